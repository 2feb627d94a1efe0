import BulwarkCore
import BulwarkStorage
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

/// Found in Bulwark: `bulwark keygen --out k` (any one-character file name) crashed with an
/// illegal instruction inside Foundation's path methods. Every flag and argument that takes a
/// file or directory is given a one-character relative name here: each command must either
/// work or fail with a sentence, never trap.
@Suite(.enabled(if: BulwarkBinary.isBuilt && ProductBinary("bulwark-verify").isBuilt, "skipped: the executables were not built"))
struct OneCharacterPathTests {
    let verify = ProductBinary("bulwark-verify")

    /// Runs `binary` with `arguments` in `directory`.
    func run(_ binary: ProductBinary, _ arguments: [String], in directory: String) throws -> ProductBinary.Result {
        try binary.run(arguments, prefix: ["/bin/sh", "-c", "cd \"$BULWARK_TEST_CWD\" && exec \"$0\" \"$@\""],
                       environment: ["BULWARK_TEST_CWD": directory], timeout: .seconds(60))
    }

    func expectNoTrap(_ result: ProductBinary.Result, _ what: String) {
        #expect(!result.killedBySignal, "\(what) was killed by a signal: \(result.stderr)")
        #expect(!result.stderr.contains("crashed"), "\(what): \(result.stderr)")
    }

    @Test func everyFileTakingFlagAcceptsAOneCharacterName() throws {
        let dir = NSTemporaryDirectory() + "bulwark-paths-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }

        let keygen = try run(BulwarkBinary, ["keygen", "--out", "k"], in: dir)
        expectNoTrap(keygen, "keygen --out k")
        #expect(keygen.status == 0, "\(keygen.stderr)")
        #expect(FileManager.default.fileExists(atPath: dir + "/k"))

        let initialized = try run(BulwarkBinary, ["cluster", "init", "--nodes", "4", "--base-port", "21500", "--out", "o"], in: dir)
        expectNoTrap(initialized, "cluster init --out o")
        #expect(initialized.status == 0, "\(initialized.stderr)")
        try FileManager.default.copyItem(atPath: dir + "/o/cluster.json", toPath: dir + "/c")

        // Each of these fails (no cluster runs, the files are not what the command wants), but
        // with a sentence and an exit status.
        func digest(_ height: Int) -> String { "\(height):" + String(repeating: "0", count: 64) }
        let failing: [(ProductBinary, [String])] = [
            (BulwarkBinary, ["node", "--config", "c", "--key", "k", "--data", "d"]),
            (BulwarkBinary, ["get", "x", "--config", "c", "--key", "k", "--timeout", "1"]),
            (BulwarkBinary, ["prove", "x", "--out", "p", "--config", "c", "--key", "k", "--timeout", "1"]),
            (BulwarkBinary, ["admin", "propose", "--config", "c", "--key", "k", "--cluster", "c", "--timeout", "1"]),
            (BulwarkBinary, ["admin", "config", "--add", "4:k:127.0.0.1:21600", "--rekey", "1:k", "--out", "n", "--cluster", "c",
                             "--key", "k", "--timeout", "1"]),
            (verify, ["log", "d", "--cluster", "c"]),
            (verify, ["digest", "d"]),
            (verify, ["epochs", "d", "--cluster", "c"]),
            (verify, ["compare", "d", "e", "--cluster", "c"]),
            (verify, ["follow", "z", "--cluster", "c", "--until-height", "1"]),
            (verify, ["consistency", digest(1), digest(2), "--log", "d", "--write-proof", "w"]),
            (verify, ["consistency", digest(1), digest(2), "--proof", "p"]),
            (verify, ["inclusion", "1", digest(2), "--log", "d"]),
            (verify, ["inclusion", "1", digest(2), "--proof", "p", "--block-hash", String(repeating: "0", count: 64)]),
            (verify, ["proof", "p", "--cluster", "c"]),
        ]
        for (binary, arguments) in failing {
            let what = "\(binary.name) \(arguments.joined(separator: " "))"
            let result = try run(binary, arguments, in: dir)
            expectNoTrap(result, what)
            #expect(result.status != 0, "\(what) succeeded")
            #expect(!(result.stderr + result.stdout).isEmpty, "\(what) failed without saying why")
            #expect(result.status != 64, "\(what) stopped at its arguments: \(result.stderr)")
        }
    }

    @Test func pathNamesSplitAsAShellWould() {
        #expect(PathName.directory(of: "k") == "")
        #expect(PathName.directory(of: "/k") == "/")
        #expect(PathName.directory(of: "a/b") == "a")
        #expect(PathName.directory(of: "a//b/") == "a")
        #expect(PathName.directory(of: "/a/b/c") == "/a/b")
        #expect(PathName.lastComponent(of: "k") == "k")
        #expect(PathName.lastComponent(of: "a/blocks/") == "blocks")
        #expect(PathName.lastComponent(of: "/") == "/")
        #expect(PathName.join("", "k") == "k")
        #expect(PathName.join("a/", "k") == "a/k")
        #expect(PathName.join("a", "k") == "a/k")
    }
}
