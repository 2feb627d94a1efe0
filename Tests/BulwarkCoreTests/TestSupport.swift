import BulwarkCore
import BulwarkStateMachine
import BulwarkTestSupport
import Testing
import Foundation

/// Finds `../shared/testdata` relative to the package root, or `$BULWARK_TESTDATA`.
enum TestData {
    static let packageRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static let directory: URL? = {
        if let fromEnvironment = ProcessInfo.processInfo.environment["BULWARK_TESTDATA"], !fromEnvironment.isEmpty {
            return URL(fileURLWithPath: fromEnvironment)
        }
        let candidate = packageRoot.deletingLastPathComponent().appendingPathComponent("shared/testdata")
        return FileManager.default.fileExists(atPath: candidate.path) ? candidate : nil
    }()

    static var available: Bool { directory != nil }
    static let skipReason: Comment = "skipped: ../shared/testdata (or BULWARK_TESTDATA) is absent"

    static func url(_ relative: String) -> URL { directory!.appendingPathComponent(relative) }

    /// Every `.json` file below `relative`, sorted by path.
    static func jsonFiles(under relative: String) -> [URL] {
        guard available, let walker = FileManager.default.enumerator(at: url(relative), includingPropertiesForKeys: nil)
        else { return [] }
        return walker.compactMap { $0 as? URL }.filter { $0.pathExtension == "json" }.sorted { $0.path < $1.path }
    }
}

extension SeededRandom {
    mutating func bytes(_ count: Int) -> [UInt8] { (0..<count).map { _ in UInt8.random(in: 0...255, using: &self) } }
    mutating func bytes(upTo max: Int) -> [UInt8] { bytes(Int.random(in: 0...max, using: &self)) }
    mutating func digest() -> Digest { Digest(bytes(32))! }
}

/// Generators of arbitrary ledger values for property tests.
struct Arbitrary {
    var rng: SeededRandom
    let cluster = ClusterID(raw: Bytes32(Array(repeating: 7, count: 32))!)
    let clients = (100..<104).map { TestKeys.key($0) }

    init(seed: UInt64) { rng = SeededRandom(seed: seed) }

    mutating func key() -> [UInt8] { rng.bytes(upTo: 24) }
    mutating func value() -> [UInt8] { rng.bytes(upTo: 64) }
    mutating func int64() -> Int64 { Int64(bitPattern: rng.next()) }

    mutating func guardValue() -> LedgerOperation.Guard {
        switch Int.random(in: 0..<4, using: &rng) {
        case 0: return .versionEquals(key: key(), version: rng.next())
        case 1: return .valueEquals(key: key(), value: value())
        case 2: return .exists(key: key())
        default: return .absent(key: key())
        }
    }

    mutating func write() -> LedgerOperation.Write {
        switch Int.random(in: 0..<3, using: &rng) {
        case 0: return .put(key: key(), value: value())
        case 1: return .delete(key: key())
        default: return .add(key: key(), delta: int64(), min: int64(), max: int64())
        }
    }

    mutating func operation() -> LedgerOperation {
        switch Int.random(in: 0..<8, using: &rng) {
        case 7: return .history(key: key(), limit: UInt32.random(in: 0...1000, using: &rng))
        case 0: return .put(key: key(), value: value())
        case 1: return .delete(key: key())
        case 2: return .cas(key: key(), expectedVersion: rng.next(), value: value())
        case 3: return .add(key: key(), delta: int64(), min: int64(), max: int64())
        case 4:
            let guards = (0..<Int.random(in: 0...3, using: &rng)).map { _ in guardValue() }
            let writes = (0..<Int.random(in: 0...3, using: &rng)).map { _ in write() }
            return .txn(guards: guards, writes: writes)
        case 5: return .get(key: key())
        default: return .range(start: key(), end: key(), limit: UInt32.random(in: 0...1000, using: &rng))
        }
    }

    mutating func request() -> Request {
        let client = clients[Int.random(in: 0..<clients.count, using: &rng)]
        return Request.signed(by: client, cluster: cluster, requestID: rng.next(), operation: operation())
    }

    mutating func header() -> BlockHeader {
        BlockHeader(clusterID: cluster, height: rng.next(), view: rng.next(), timestampMs: rng.next(),
                    proposer: UInt16.random(in: 0...UInt16.max, using: &rng), prevBlockHash: rng.digest(),
                    txRoot: rng.digest(), historyRoot: rng.digest())
    }

    mutating func block() -> Block {
        Block(header: header(), requests: (0..<Int.random(in: 0...3, using: &rng)).map { _ in request() })
    }

    mutating func votes() -> [Vote] {
        let signers = (0..<UInt16(7)).filter { _ in Bool.random(using: &rng) }
        return signers.map { Vote(replica: $0, signature: Signature(rng.bytes(64))!) }
    }

    mutating func commitCertificate() -> CommitCertificate {
        CommitCertificate(height: rng.next(), view: rng.next(), blockHash: rng.digest(), votes: votes())
    }

    mutating func executionCertificate() -> ExecutionCertificate {
        ExecutionCertificate(height: rng.next(), blockHash: rng.digest(), stateRoot: rng.digest(), votes: votes())
    }

    mutating func optionalValue() -> [UInt8]? { Bool.random(using: &rng) ? value() : nil }

    mutating func operationResult() -> OperationResult {
        switch Int.random(in: 0..<8, using: &rng) {
        case 0: return .written(version: rng.next())
        case 1: return .deleted(existed: Bool.random(using: &rng))
        case 2: return .balance(int64(), version: rng.next())
        case 3: return .value(optionalValue(), version: rng.next())
        case 4: return .entries((0..<Int.random(in: 0...3, using: &rng)).map { _ in .init(key: key(), value: value(), version: rng.next()) })
        case 5: return .history((0..<Int.random(in: 0...3, using: &rng)).map { _ in .init(height: rng.next(), value: optionalValue()) })
        case 6: return .conditionFailed(.transactionAdd(index: UInt32.random(in: 0...9, using: &rng),
                                                        .belowMinimum(balance: int64(), min: int64())))
        default: return .rejected(.valueTooLong(bytes: rng.next(), max: rng.next()))
        }
    }

    /// A real proof about a small state (key proofs cannot be made up: their paths are checked).
    mutating func keyProof() -> KeyProof {
        var state = KeyValueState(genesis: .testGenesis(cluster: testCluster, parameters: ProtocolParameters()))
        let requests = (0..<Int.random(in: 0...4, using: &rng)).map { i in
            Request.signed(by: clients[0], cluster: cluster, requestID: UInt64(i + 1), operation: .put(key: [UInt8(i)], value: value()))
        }
        _ = try! state.execute(Block(header: BlockHeader(clusterID: cluster, height: 1, view: 0, timestampMs: 0, proposer: 0,
                                                    prevBlockHash: .zero, txRoot: .zero, historyRoot: .zero),
                                requests: requests))
        return state.prove([UInt8(Int.random(in: 0...5, using: &rng))])
    }

    mutating func clientFrame() -> ClientFrame {
        switch Int.random(in: 0..<5, using: &rng) {
        case 0: return .request(request())
        case 1:
            return .reply(ClientReply(requestID: rng.next(), height: rng.next(), result: operationResult().encoded()))
        case 2: return .proveRequest(key: key(), nonce: rng.next())
        case 3: return .proof(nonce: rng.next(), KeyProofBundle(proof: keyProof(), certificate: executionCertificate()))
        default: return .proofUnavailable(nonce: rng.next(), reason: "no certified checkpoint yet")
        }
    }
}

/// The cluster of states built here without a configuration.
let testCluster = ClusterID(raw: Bytes32(Array(repeating: 0x7e, count: 32))!)
