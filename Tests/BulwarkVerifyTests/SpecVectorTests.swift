import BulwarkCore
import BulwarkStateMachine
@testable import BulwarkStorage
import BulwarkTestSupport
import BulwarkVerify
import Foundation
import Testing

/// SPEC.md §17: the conformance vectors in `spec/vectors/` hold against the code, so the
/// specification and the code cannot drift apart unnoticed.
@Suite struct SpecVectorTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("spec/vectors")

    static func committed(_ path: String) throws -> [UInt8] {
        try [UInt8](Data(contentsOf: root.appendingPathComponent(path)))
    }

    static func json(_ path: String) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(try committed(path))) as! [String: Any]
    }

    /// A committed vector ledger's configuration, and its segments in `/blocks`.
    static func vectorLedger(_ directory: String = "ledger") throws -> (ClusterConfig, SimulatedFileSystem) {
        let config = try JSONDecoder().decode(ClusterConfig.self, from: Data(try committed("\(directory)/cluster.json")))
        let fs = SimulatedFileSystem()
        try fs.createDirectory("/blocks")
        for segment in try json("\(directory)/expected.json")["segments"] as! [String] {
            let file = try fs.open("/" + segment, create: true)
            try file.append(try committed("\(directory)/\(segment)"))
            try file.sync()
        }
        return (config, fs)
    }

    /// The code still generates exactly the committed vectors (rewrite them with
    /// `BULWARK_WRITE_VECTORS=1 swift test --filter SpecVectorTests` after an intended
    /// format change, and update SPEC.md in the same commit).
    @Test func theCommittedVectorsAreWhatTheCodeGenerates() throws {
        let write = ProcessInfo.processInfo.environment["BULWARK_WRITE_VECTORS"] == "1"
        for (path, bytes) in try SpecVectors.files().sorted(by: { $0.key < $1.key }) {
            let url = Self.root.appendingPathComponent(path)
            if write {
                try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
                try Data(bytes).write(to: url)
            }
            #expect(try Self.committed(path) == bytes, "spec/vectors/\(path) differs from what the code generates")
        }
    }

    /// From the committed files alone: the ledger passes the auditor; every height has the
    /// expected block hash and digest; replaying its requests through a fresh state machine
    /// gives every expected result and state root.
    @Test func theVectorLedgerReplaysToItsRoots() throws {
        let kinds = try Self.replay("ledger", heights: 12)
        // The ledger exercises every result kind, a duplicate and a stale request.
        for tag in 1...8 { #expect(kinds.contains("executed \(tag)"), "no result of kind \(tag)") }
        #expect(kinds.isSuperset(of: ["stale", "duplicate 1", "duplicate 9"]), "\(kinds)")
    }

    /// The policy ledger (SPEC.md §19) likewise: denials, refused and applied approvals, the policy read.
    @Test func thePolicyVectorLedgerReplaysToItsRoots() throws {
        let kinds = try Self.replay("ledger-policy", heights: 8)
        for tag in 13...16 { #expect(kinds.contains("executed \(tag)"), "no result of kind \(tag)") }
    }

    /// The epoch ledger (SPEC.md §18): a change scheduled after a full governance refused a
    /// seventeenth proposal, a full policy refused a 65th role, epoch 1's validators with a gap
    /// in their ids proposing and certifying, over several segments.
    @Test func theEpochVectorLedgerReplaysToItsRoots() throws {
        let kinds = try Self.replay("ledger-epochs", heights: 20)
        for tag in [10, 11, 12, 14, 15] { #expect(kinds.contains("executed \(tag)"), "no result of kind \(tag)") }
        let expected = try Self.json("ledger-epochs/expected.json")
        #expect((expected["segments"] as! [String]).count >= 3)
        let results = (expected["heights"] as! [[String: Any]]).flatMap { $0["requests"] as! [[String: Any]] }
            .compactMap { $0["result"] as? String }
        // tooManyProposals(16), policyFull (edit 0), and the change scheduled to end epoch 0 at 16.
        #expect(results.contains("0b061000000000000000"))
        #expect(results.contains { $0.hasPrefix("0f0700000000") && $0.hasSuffix("07") })
        #expect(results.contains { $0.hasPrefix("0a") && $0.hasSuffix("011000000000000000") })
    }

    /// Audits and replays a committed vector ledger against its expected.json; the kinds of
    /// outcome it holds.
    static func replay(_ directory: String, heights count: Int) throws -> Set<String> {
        let (config, fs) = try Self.vectorLedger(directory)
        let report = LedgerAudit(config: config, threads: 1).audit(directory: "/blocks", fileSystem: fs)
        #expect(report.passed, "\(String(describing: report.problem))")
        let heights = try Self.json("\(directory)/expected.json")["heights"] as! [[String: Any]]
        #expect(report.heights == count && heights.count == count && report.certifiedHeight == count)
        let reader = try BlockLogReader(directory: "/blocks", fileSystem: fs)
        var state = KeyValueState(genesis: config)
        var kinds = Set<String>()
        for expected in heights {
            let height = Height(expected["height"] as! Int)
            let entry = try reader.entry(at: height)
            #expect(entry.block.hash.hex == expected["blockHash"] as? String, "height \(height)")
            #expect(LedgerDigest.of(reader, height: height).description == expected["ledgerDigest"] as? String)
            let outcomes = try state.execute(entry.block)
            #expect(state.stateRoot.hex == expected["stateRoot"] as? String, "state root after height \(height)")
            let requests = expected["requests"] as! [[String: Any]]
            #expect(outcomes.count == requests.count)
            for (outcome, want) in zip(outcomes, requests) {
                switch outcome {
                case let .executed(result), let .duplicate(result):
                    #expect(Hex.encode(result.encoded()) == want["result"] as? String, "height \(height)")
                    kinds.insert("\(want["outcome"]!) \(result.encoded()[0])")
                case .stale:
                    #expect(want["outcome"] as? String == "stale")
                    kinds.insert("stale")
                }
            }
        }
        return kinds
    }

    /// Every single-item case passes or fails as the vectors say.
    @Test func everyCaseHoldsAsTheVectorsSay() throws {
        let (config, fs) = try Self.vectorLedger()
        let reader = try BlockLogReader(directory: "/blocks", fileSystem: fs)
        let heights = try Self.json("ledger/expected.json")["heights"] as! [[String: Any]]
        var tips = [ChainTip.genesis]
        for height in 1...reader.height { tips.append(try tips.last!.verifyNext(try reader.entry(at: height), config: config, epoch: 0)) }
        let cases = try Self.json("cases.json")["cases"] as! [[String: Any]]
        #expect(cases.count >= 30)
        for item in cases {
            let bytes = Hex.decode(item["hex"] as! String)!
            let name = item["name"] as! String
            let passed: Bool
            switch item["kind"] as! String {
            case "request":
                passed = (try? Request(decoding: bytes))?.hasValidSignature(cluster: config.clusterID) ?? false
            case "block entry":
                let height = item["height"] as! Int
                passed = (try? tips[height - 1].verifyNext(try LedgerEntry(decoding: bytes), config: config, epoch: 0)) != nil
            case "execution certificate":
                if let certificate = try? ExecutionCertificate(decoding: bytes),
                   certificate.height >= 1, certificate.height <= UInt64(heights.count) {
                    let expected = heights[Int(certificate.height) - 1]
                    passed = certificate.height % config.parameters.checkpointInterval == 0
                        && (try? certificate.verify(config: config)) != nil
                        && certificate.blockHash.hex == expected["blockHash"] as? String
                        && certificate.stateRoot.hex == expected["stateRoot"] as? String
                } else {
                    passed = false
                }
            case "key proof":
                passed = (try? KeyProofBundle(fileText: String(decoding: bytes, as: UTF8.self)).verify(config: config)) != nil
            case "epoch proof":
                let genesis = try ClusterConfig(decoding: Hex.decode(item["config"] as! String)!)
                let epoch = UInt64(item["epoch"] as! Int)
                passed = (try? EpochProof(decoding: bytes).verify(from: genesis, epoch: epoch)) != nil
            case "decode block header": passed = (try? BlockHeader(decoding: bytes)) != nil
            case "decode request": passed = (try? Request(decoding: bytes)) != nil
            case "decode result": passed = (try? OperationResult(decoding: bytes)) != nil
            case "decode operation": passed = (try? LedgerOperation(decoding: bytes)) != nil
            case "decode execution certificate": passed = (try? ExecutionCertificate(decoding: bytes)) != nil
            case let kind:
                Issue.record("unknown case kind \(kind)")
                continue
            }
            #expect(passed == (item["expect"] as? String == "pass"), "\(name)")
        }
    }

    /// An auditor written in Python from SPEC.md alone (`spec/reference/audit.py`, no code
    /// shared) reproduces every block hash, digest, state root and result of the vectors,
    /// and fails a ledger of another cluster and a changed expectation.
    @Test(.enabled(if: SpecVectorTests.python != nil, "skipped: no python3"))
    func anIndependentAuditorWrittenFromTheSpecAgrees() throws {
        let script = Self.root.deletingLastPathComponent().appendingPathComponent("reference/audit.py").path
        let ledger = Self.root.appendingPathComponent("ledger").path
        let python = ProductBinary(path: Self.python!)
        let honest = try python.run([script, ledger])
        #expect(honest.status == 0 && honest.stdout.hasPrefix("ok: 12 blocks, state certified through height 12"),
                "\(honest.stdout)\(honest.stderr)")
        let policy = try python.run([script, Self.root.appendingPathComponent("ledger-policy").path])
        #expect(policy.status == 0 && policy.stdout.hasPrefix("ok: 8 blocks, state certified through height 8"),
                "\(policy.stdout)\(policy.stderr)")
        let epochs = try python.run([script, Self.root.appendingPathComponent("ledger-epochs").path])
        #expect(epochs.status == 0 && epochs.stdout.hasPrefix("ok: 20 blocks, state certified through height 20"),
                "\(epochs.stdout)\(epochs.stderr)")
        let copy = NSTemporaryDirectory() + "bulwark-vectors-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: copy) }
        try FileManager.default.copyItem(atPath: ledger, toPath: copy)
        var expected = try String(contentsOfFile: copy + "/expected.json", encoding: .utf8)
        expected = expected.replacingOccurrences(of: "\"060101000000000000000000000000000000\"", with: "\"060101\"")
        try expected.write(toFile: copy + "/expected.json", atomically: true, encoding: .utf8)
        let changed = try python.run([script, copy])
        #expect(changed.status != 0 && changed.stdout.contains("FAILED: height 2"), "\(changed.stdout)")
        var cluster = try String(contentsOfFile: copy + "/cluster.json", encoding: .utf8)
        cluster = cluster.replacingOccurrences(of: "5c5c5c5c", with: "5c5c5c5d")
        try cluster.write(toFile: copy + "/cluster.json", atomically: true, encoding: .utf8)
        let other = try python.run([script, copy])
        #expect(other.status != 0 && other.stdout.contains("FAILED: height 1: another cluster"), "\(other.stdout)")
    }

    /// The python3 on this machine's PATH, if there is one.
    static let python: String? = {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        return path.split(separator: ":").map { "\($0)/python3" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }()
}
