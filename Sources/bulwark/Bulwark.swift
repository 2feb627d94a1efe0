import ArgumentParser
import BulwarkCore
import Foundation

@main
struct Bulwark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bulwark",
        abstract: "A Byzantine-fault-tolerant replicated ledger.",
        subcommands: [Keygen.self, Cluster.self, Node.self, Put.self, Get.self, Delete.self, CompareAndSet.self, Add.self,
                      RangeCommand.self, History.self, Prove.self, Txn.self, Transfer.self, Balance.self, Bench.self, Status.self,
                      Admin.self]
    )

    /// Swift turns bytes that are not UTF-8 in the arguments into U+FFFD, so two different
    /// byte keys would silently become one. Such arguments are refused before parsing; bytes
    /// that are not text go in hex, with `--hex`.
    static func main() async {
        for index in 1..<Int(CommandLine.argc) {
            guard let raw = CommandLine.unsafeArgv[index] else { continue }
            let bytes = UnsafeBufferPointer(start: UnsafeRawPointer(raw).assumingMemoryBound(to: UInt8.self), count: strlen(raw))
            if String(validating: bytes, as: UTF8.self) == nil {
                FileHandle.standardError.write(Data("error: argument \(index) is not valid UTF-8; give binary keys and values in hex with --hex\n".utf8))
                Foundation.exit(ExitCode.validationFailure.rawValue)
            }
        }
        do {
            var command = try parseAsRoot()
            if var command = command as? any AsyncParsableCommand {
                try await command.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }
}

/// An operating error described in one sentence.
struct Failure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

extension ParsableCommand {
    /// Prints one sentence to standard error and returns exit status 1, without the usage text
    /// ArgumentParser adds for validation errors: these are operating errors, not usage mistakes.
    static func fail(_ error: any Error) -> ExitCode {
        FileHandle.standardError.write(Data("error: \(error)\n".utf8))
        return ExitCode.failure
    }
}
