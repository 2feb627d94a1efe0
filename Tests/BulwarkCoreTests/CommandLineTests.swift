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

    /// Found in Bulwark: the CLI turned bytes that are not UTF-8 into U+FFFD, so two different
    /// byte keys became one key. Such an argument is refused, naming --hex; with --hex, what
    /// is not hex is refused too. Nothing is rewritten.
    @Test func keysThatAreNotUTF8AreRefusedNotRewritten() throws {
        // Process takes Strings, so a shell passes the raw byte 0xFF.
        let raw = try BulwarkBinary.run(["--config", "/nonexistent"],
                                        prefix: ["/bin/sh", "-c", "exec \"$0\" put \"$(printf 'k\\377')\" v \"$@\""])
        #expect(raw.status != 0)
        #expect(raw.stderr.contains("not valid UTF-8") && raw.stderr.contains("--hex"), "\(raw.stderr)")
        let notHex = try BulwarkBinary.run(["put", "zz", "01", "--hex", "--config", "/nonexistent"])
        #expect(notHex.status != 0)
        #expect(notHex.stderr.contains("'zz' is not hex"), "\(notHex.stderr)")
        // Valid hex passes this step and stops only at the missing configuration.
        let hex = try BulwarkBinary.run(["put", "6bff", "01", "--hex", "--config", "/nonexistent"])
        #expect(hex.status != 0)
        #expect(hex.stderr.contains("cannot read cluster configuration"), "\(hex.stderr)")
    }
}
