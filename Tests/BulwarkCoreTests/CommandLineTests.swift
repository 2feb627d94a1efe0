import BulwarkCore
import Foundation
import Testing

/// Runs the built `bulwark` binary as a user would.
enum BulwarkBinary {
    static var url: URL {
        // The test bundle sits in the same build products directory as the executables.
        let products = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        let candidates = [products, products.deletingLastPathComponent()]
            .map { $0.appendingPathComponent("bulwark") }
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) } ?? candidates[0]
    }

    static var available: Bool { FileManager.default.isExecutableFile(atPath: url.path) }

    struct Result {
        let status: Int32
        let stdout: String
        let stderr: String
    }

    static func run(_ arguments: [String]) throws -> Result {
        let process = Process()
        process.executableURL = url
        process.arguments = arguments
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Result(status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
                      stderr: String(decoding: stderr, as: UTF8.self))
    }
}

@Suite(.enabled(if: BulwarkBinary.available, "skipped: the bulwark executable was not built"))
struct CommandLineTests {
    @Test func everyCommandHasHelp() throws {
        for command in [["--help"], ["keygen", "--help"], ["cluster", "--help"], ["cluster", "init", "--help"]] {
            let result = try BulwarkBinary.run(command)
            #expect(result.status == 0, "\(command)")
            #expect(result.stdout.contains("USAGE"), "\(command)")
        }
    }

    @Test func clusterInitWritesAConfigAndRefusesToOverwrite() throws {
        let dir = NSTemporaryDirectory() + "bulwark-cli-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let first = try BulwarkBinary.run(["cluster", "init", "--nodes", "4", "--base-port", "21000", "--out", dir])
        #expect(first.status == 0)
        #expect(first.stdout.contains("4 replicas"))
        let config = try ClusterConfig.load(from: dir + "/cluster.json")
        #expect(config.validators[1].replicaAddress.port == 21003)

        let again = try BulwarkBinary.run(["cluster", "init", "--out", dir])
        #expect(again.status != 0)
        #expect(again.stderr.contains("already exists; pass --force"))

        let tooFew = try BulwarkBinary.run(["cluster", "init", "--nodes", "3", "--out", dir + "/x"])
        #expect(tooFew.status != 0)
        #expect(tooFew.stderr.contains("at least 4 nodes"))
    }

    @Test func keygenWritesAPrivateFileAndPrintsThePublicKey() throws {
        let dir = NSTemporaryDirectory() + "bulwark-cli-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let result = try BulwarkBinary.run(["keygen", "--out", dir + "/client.key"])
        #expect(result.status == 0)
        let key = try KeyFile.load(from: dir + "/client.key")
        #expect(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == key.publicKey.hex)
        let again = try BulwarkBinary.run(["keygen", "--out", dir + "/client.key"])
        #expect(again.status != 0)
        #expect(try KeyFile.load(from: dir + "/client.key").publicKey == key.publicKey)
    }
}
