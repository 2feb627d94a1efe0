import ArgumentParser
import BulwarkCore
import Foundation

@main
struct Bulwark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bulwark",
        abstract: "A Byzantine-fault-tolerant replicated ledger.",
        subcommands: [Keygen.self, Cluster.self, Node.self, Put.self, Get.self, Delete.self, CompareAndSet.self, Add.self,
                      RangeCommand.self, History.self, Prove.self, Txn.self, Transfer.self, Balance.self, Bench.self, Status.self]
    )
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
