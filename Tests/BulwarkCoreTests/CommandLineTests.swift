import BulwarkCore
import BulwarkTestSupport
import Foundation
import Testing

let BulwarkBinary = ProductBinary("bulwark")

@Suite(.enabled(if: BulwarkBinary.isBuilt, "skipped: the bulwark executable was not built"))
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
