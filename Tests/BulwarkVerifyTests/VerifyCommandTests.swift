import BulwarkCore
import BulwarkStorage
import BulwarkTestSupport
import BulwarkVerify
import Foundation
import Testing

let verifyBinary = ProductBinary("bulwark-verify")

@Suite(.enabled(if: verifyBinary.isBuilt, "skipped: the bulwark-verify executable was not built"))
struct VerifyCommandTests {
    /// A replica data directory (`DIR/blocks`) and the cluster's `cluster.json`, on a real disk.
    static func replica(_ fixture: LedgerFixture) throws -> (directory: String, cluster: String) {
        let root = NSTemporaryDirectory() + "bulwark-verify-\(UUID().uuidString)"
        let log = try BlockLog(directory: root + "/blocks")
        for entry in fixture.entries {
            try log.append(entry)
            for cert in fixture.executionCertificates where cert.height == entry.block.height { try log.append(cert) }
        }
        try log.sync()
        try fixture.config.jsonData().write(to: URL(fileURLWithPath: root + "/cluster.json"))
        return (root, root + "/cluster.json")
    }

    @Test func everySubcommandHasHelp() throws {
        for command in [["--help"], ["log", "--help"], ["compare", "--help"], ["digest", "--help"], ["consistency", "--help"],
                        ["inclusion", "--help"], ["proof", "--help"]] {
            let result = try verifyBinary.run(command)
            #expect(result.status == 0 && result.stdout.contains("USAGE"), "\(command)")
        }
    }

    @Test func logPassesAnHonestLedgerAndNamesTheFirstBadHeight() throws {
        let fixture = LedgerFixture.ledger(blocks: 10, checkpointInterval: 4)
        let (dir, cluster) = try Self.replica(fixture)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let ok = try verifyBinary.run(["log", dir, "--cluster", cluster])
        #expect(ok.status == 0, "\(ok.stdout)\(ok.stderr)")
        #expect(ok.stdout.contains("ok: 10 blocks, 30 requests"))
        let json = try verifyBinary.run(["log", dir + "/blocks", "--cluster", cluster, "--json", "--threads", "1"])
        let report = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as! [String: Any]
        #expect(report["ok"] as? Bool == true && report["heights"] as? Int == 10)

        // Flip one byte in the middle of the segment.
        let segment = dir + "/blocks/" + BlockLogReader.segmentName(1)
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: segment)))
        bytes[bytes.count / 2] ^= 0x40
        try Data(bytes).write(to: URL(fileURLWithPath: segment))
        let bad = try verifyBinary.run(["log", dir, "--cluster", cluster, "--json"])
        #expect(bad.status != 0)
        let badReport = try JSONSerialization.jsonObject(with: Data(bad.stdout.utf8)) as! [String: Any]
        let problem = badReport["problem"] as? [String: Any]
        #expect(badReport["ok"] as? Bool == false)
        #expect((problem?["height"] as? Int ?? 0) >= 1 && problem?["reason"] != nil)
    }

    @Test func compareDigestConsistencyInclusionAndProof() throws {
        let fixture = LedgerFixture.ledger(blocks: 12, checkpointInterval: 4)
        let (a, cluster) = try Self.replica(fixture)
        let (b, _) = try Self.replica(fixture)
        var forked = LedgerFixture.ledger(blocks: 6, checkpointInterval: 4)
        forked.addBlock([.put(key: [1], value: [2])])
        let (c, _) = try Self.replica(forked)
        defer { for d in [a, b, c] { try? FileManager.default.removeItem(atPath: d) } }

        #expect(try verifyBinary.run(["compare", a, b, "--cluster", cluster]).status == 0)
        let diverged = try verifyBinary.run(["compare", a, c, "--cluster", cluster])
        #expect(diverged.status != 0)
        #expect(diverged.stdout.contains("DIVERGED at height 7"))
        #expect(diverged.stdout.contains("valid commit certificate"))

        let old = try verifyBinary.run(["digest", a, "--height", "5"]).stdout
            .split(separator: "\n").first { $0.hasPrefix("digest ") }!.dropFirst("digest ".count)
        let new = try verifyBinary.run(["digest", a]).stdout
            .split(separator: "\n").first { $0.hasPrefix("digest ") }!.dropFirst("digest ".count)
        #expect(new.hasPrefix("12:"))
        let proofFile = a + "/consistency.proof"
        #expect(try verifyBinary.run(["consistency", String(old), String(new), "--log", a, "--write-proof", proofFile]).status == 0)
        #expect(try verifyBinary.run(["consistency", String(old), String(new), "--proof", proofFile]).status == 0)
        let forkedOld = try verifyBinary.run(["digest", c, "--height", "7"]).stdout
            .split(separator: "\n").first { $0.hasPrefix("digest ") }!.dropFirst("digest ".count)
        #expect(try verifyBinary.run(["consistency", String(forkedOld), String(new), "--proof", proofFile]).status != 0)
        #expect(try verifyBinary.run(["inclusion", "7", String(new), "--log", a]).status == 0)
        #expect(try verifyBinary.run(["inclusion", "7", String(new), "--log", c]).status != 0)

        let bundle = KeyProofBundle(proof: fixture.prove(Array("key-1".utf8)), certificate: fixture.executionCertificates.last!)
        try bundle.fileText.write(toFile: a + "/key.proof", atomically: true, encoding: .utf8)
        let proven = try verifyBinary.run(["proof", a + "/key.proof", "--cluster", cluster])
        #expect(proven.status == 0 && proven.stdout.contains("key 'key-1' = "))
        var lie = bundle
        lie.proof.value = Array("forged".utf8)
        try lie.fileText.write(toFile: a + "/lie.proof", atomically: true, encoding: .utf8)
        #expect(try verifyBinary.run(["proof", a + "/lie.proof", "--cluster", cluster]).status != 0)
    }

    @Test func badInputGetsOneClearSentence() throws {
        let missing = try verifyBinary.run(["log", "/nonexistent/dir", "--cluster", "/nonexistent/cluster.json"])
        #expect(missing.status != 0)
        #expect(missing.stderr.contains("cannot read cluster configuration"))
        #expect(try verifyBinary.run(["consistency", "x", "y", "--log", "/tmp"]).status != 0)
    }
}
