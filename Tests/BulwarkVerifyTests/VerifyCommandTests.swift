import BulwarkCore
import BulwarkStateMachine
@testable import BulwarkStorage
import BulwarkTestSupport
import BulwarkVerify
import Foundation
import Testing

let verifyBinary = ProductBinary("bulwark-verify")

@Suite(.enabled(if: verifyBinary.isBuilt, "skipped: the bulwark-verify executable was not built"))
struct VerifyCommandTests {
    /// A replica data directory (`DIR/blocks`) and the cluster's `cluster.json`, on a real disk.
    static func replica(_ fixture: LedgerFixture, certificates: Bool = true) throws -> (directory: String, cluster: String) {
        let root = NSTemporaryDirectory() + "bulwark-verify-\(UUID().uuidString)"
        let log = try BlockLog(directory: root + "/blocks")
        for entry in fixture.entries {
            try log.append(entry)
            for cert in fixture.executionCertificates where certificates && cert.height == entry.block.height { try log.append(cert) }
        }
        try log.sync()
        try fixture.config.jsonData().write(to: URL(fileURLWithPath: root + "/cluster.json"))
        return (root, root + "/cluster.json")
    }

    @Test func everySubcommandHasHelp() throws {
        for command in [["--help"], ["log", "--help"], ["follow", "--help"], ["compare", "--help"], ["digest", "--help"],
                        ["consistency", "--help"], ["inclusion", "--help"], ["proof", "--help"]] {
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
        // The JSON report pins the ledger too.
        #expect(report["digest"] as? String == LedgerDigest(height: 10, root: fixture.tip.history.root).description)
        #expect(report["certifiedHeight"] as? Int == 8 && report["uncertifiedBlocks"] as? Int == 2)
        #expect(ok.stdout.contains("state certified through height 8; blocks 9…10 not covered by an execution certificate"))

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
        let text = try verifyBinary.run(["log", dir, "--cluster", cluster])
        #expect(text.stdout.hasPrefix("FAILED at height "), "\(text.stdout)")
        #expect(!text.stdout.contains("block: block"), "each thing is said once: \(text.stdout)")
    }

    /// A ledger without execution certificates verifies its blocks, but says its state is
    /// certified nowhere; `--require-certified` then fails.
    @Test func requireCertifiedFailsALedgerWhoseStateNoCertificateCovers() throws {
        let fixture = LedgerFixture.ledger(blocks: 10, checkpointInterval: 4)
        let (bare, cluster) = try Self.replica(fixture, certificates: false)
        let (full, _) = try Self.replica(fixture)
        defer { for d in [bare, full] { try? FileManager.default.removeItem(atPath: d) } }
        let plain = try verifyBinary.run(["log", bare, "--cluster", cluster])
        #expect(plain.status == 0 && plain.stdout.contains("state not certified at any height"), "\(plain.stdout)")
        let required = try verifyBinary.run(["log", bare, "--cluster", cluster, "--require-certified"])
        #expect(required.status != 0)
        #expect(required.stdout.contains("10 blocks at the end are not covered by an execution certificate"))
        // Two uncertified blocks are within one checkpoint interval (4).
        #expect(try verifyBinary.run(["log", full, "--cluster", cluster, "--require-certified"]).status == 0)
    }

    /// Every command that reads a ledger refuses a damaged one, naming height, record,
    /// segment and offset, unless --prefix asks for the intact blocks before the damage.
    /// (compare said two ledgers agreed, and digest, inclusion and consistency used the
    /// prefix without a word.)
    @Test func damagedLedgersAreRefusedUnlessThePrefixIsAskedFor() throws {
        let fixture = LedgerFixture.ledger(blocks: 12, checkpointInterval: 4)
        let (good, cluster) = try Self.replica(fixture)
        let (damaged, _) = try Self.replica(fixture)
        defer { for d in [good, damaged] { try? FileManager.default.removeItem(atPath: d) } }
        let segment = damaged + "/blocks/" + BlockLogReader.segmentName(1)
        let reader = try BlockLogReader(directory: damaged + "/blocks")
        let offset = reader.location(of: 8).offset
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: segment)))
        bytes[Int(offset) + 40] ^= 0x10
        try Data(bytes).write(to: URL(fileURLWithPath: segment))
        let digest12 = LedgerDigest(height: 12, root: fixture.tip.history.root).description
        let digest5 = try verifyBinary.run(["digest", good, "--height", "5"]).stdout
            .split(separator: "\n").first { $0.hasPrefix("digest ") }!.dropFirst("digest ".count)
        let commands: [[String]] = [
            ["compare", good, damaged, "--cluster", cluster],
            ["digest", damaged],
            ["inclusion", "3", digest12, "--log", damaged],
            ["consistency", String(digest5), digest12, "--log", damaged],
            ["log", damaged, "--cluster", cluster],
        ]
        for command in commands {
            let refused = try verifyBinary.run(command)
            #expect(refused.status != 0, "\(command)")
            let said = refused.stdout + refused.stderr
            #expect(said.contains("height 8") && said.contains("block") && said.contains("segment-00000001.log")
                    && said.contains("byte \(offset)"), "\(command): \(said)")
        }
        let prefix = try verifyBinary.run(["digest", damaged, "--prefix"])
        #expect(prefix.status == 0 && prefix.stdout.hasPrefix("height 7\n") && prefix.stderr.contains("warning"))
        #expect(try verifyBinary.run(["compare", good, damaged, "--cluster", cluster, "--prefix"]).status == 0)
        let audited = try verifyBinary.run(["log", damaged, "--cluster", cluster, "--prefix"])
        #expect(audited.status == 0 && audited.stdout.contains("ok: 7 blocks") && audited.stdout.contains("warning"))
    }

    /// `follow` verifies blocks as they land and fails, naming the height, on a record
    /// damaged while it follows.
    @Test func followVerifiesBlocksAsTheyLandAndFailsOnDamage() throws {
        let fixture = LedgerFixture.ledger(blocks: 12, checkpointInterval: 4)
        let root = NSTemporaryDirectory() + "bulwark-follow-cli-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        try fixture.config.jsonData().write(to: URL(fileURLWithPath: root + "/cluster.json"))
        // Only the writer thread touches the log once the follower runs.
        nonisolated(unsafe) let log = try BlockLog(directory: root + "/blocks")
        for entry in fixture.entries.prefix(4) { try log.append(entry) }
        try log.sync()
        // Written while the follower runs: blocks 5…8, then a damaged block 9 that 10 follows.
        let writer = Thread {
            usleep(300_000)
            for entry in fixture.entries[4..<8] { try? log.append(entry) }
            try? log.append(fixture.executionCertificates[1])
            try? log.sync()
            usleep(300_000)
            var damaged = RecordFraming.frame(type: 1, payload: fixture.entries[8].encoded())
            damaged[damaged.count / 2] ^= 0x20
            let more = RecordFraming.frame(type: 1, payload: fixture.entries[9].encoded())
            if let handle = FileHandle(forWritingAtPath: root + "/blocks/" + BlockLogReader.segmentName(1)) {
                handle.seekToEndOfFile()
                handle.write(Data(damaged + more))
                handle.closeFile()
            }
        }
        writer.start()
        let result = try verifyBinary.run(["follow", root, "--cluster", root + "/cluster.json", "--interval-ms", "50", "--json"],
                                          timeout: .seconds(60))
        while !writer.isFinished { usleep(1000) }
        #expect(result.status != 0)
        let lines = result.stdout.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
        let heights = lines.compactMap { $0["height"] as? Int }
        #expect(heights.first ?? 0 >= 4 && heights.contains(8), "\(result.stdout)")
        let verified8 = lines.first { $0["height"] as? Int == 8 && $0["ok"] as? Bool == true }
        #expect(verified8?["digest"] as? String == LedgerDigest(height: 8, root: fixture.entries[8].block.header.historyRoot).description)
        #expect(verified8?["certifiedHeight"] as? Int == 8)
        let failure = lines.last?["problem"] as? [String: Any]
        #expect(failure?["height"] as? Int == 9 && failure?["record"] as? String == "block", "\(result.stdout)")
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

        // Found in Bulwark: the demo's closing check printed "4 ledgers agree at every common
        // height (1...0)" with one replica's ledger empty, and passed. An empty ledger agrees
        // with nothing.
        let empty = NSTemporaryDirectory() + "bulwark-empty-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: empty + "/blocks", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: empty) }
        let nothing = try verifyBinary.run(["compare", a, empty, "--cluster", cluster])
        #expect(nothing.status != 0)
        #expect(nothing.stdout.contains("NOTHING COMPARED: \(empty) holds no blocks"), "\(nothing.stdout)\(nothing.stderr)")

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
