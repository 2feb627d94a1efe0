import BulwarkConsensus
import BulwarkCore
import BulwarkStateMachine
import BulwarkShell
import BulwarkStorage
import BulwarkTransport
import BulwarkTestSupport
import Foundation

/// Every door through which bytes from a peer, a client or a file reach a replica or the
/// auditor (ARCHITECTURE.md §7), as a function of an input: it must never trap, and where it decodes
/// something, what it decoded must be exactly what the bytes said (canonical encodings: the
/// same value has one encoding, so re-encoding gives the input back). `tools/fuzz` runs each
/// under libFuzzer; the test suite runs every seed and a bounded number of mutations of them.
public enum FuzzHarness: String, CaseIterable, Sendable {
    case peerFrame = "peer-frame"
    case clientFrame = "client-frame"
    case message
    case handshake
    case blockLog = "block-log"
    case wal
    case snapshot
    case segmentIndex = "segment-index"
    case clusterConfig = "cluster-config"
    /// Structure-aware: events for a replica in a realistic state (see `ReplicaScenario`).
    case replica
    /// Structure-aware: frames, timers and time for the production replica shell, recovered
    /// from a disk holding a ledger (see `ShellScenario`).
    case shell

    public func run(_ data: [UInt8]) {
        switch self {
        case .peerFrame:
            Self.peerFrame(data)
        case .clientFrame:
            Self.clientFrame(data)
        case .message:
            guard let message = try? Message(decoding: data) else { return }
            Self.canonical(message.encoded(), data, "message")
            if message.isInProtocolRange { message.preverify(config: Self.fixture.config, verifier: Self.verifier) }
        case .handshake:
            Self.handshake(data)
        case .blockLog:
            Self.blockLog(Self.framed(data))
        case .wal:
            let fs = SimulatedFileSystem()
            Self.write(Self.framed(data), to: "/wal", in: fs)
            guard let wal = try? WriteAheadLog(path: "/wal", fileSystem: fs) else { return }
            for record in wal.records {
                guard let decoded = try? WALRecord(decoding: record) else { continue }
                Self.canonical(decoded.encoded(), record, "WAL record")
            }
        case .snapshot:
            // Sealed with its digest, so the decoder behind the digest check is reached.
            let bytes = data + Digest.sha256(data).bytes
            guard var state = try? KeyValueState(snapshot: bytes, cluster: Self.fixture.config.clusterID,
                                                 history: Self.fixture.state.historyStore) else { return }
            _ = state.stateRoot
            Self.canonical(state.snapshot(), bytes, "snapshot")
        case .segmentIndex:
            Self.segmentIndex(Self.framed(data))
        case .clusterConfig:
            Self.clusterConfig(data)
        case .replica:
            ReplicaScenario.fuzz(data)
        case .shell:
            ShellScenario.fuzz(data)
        }
    }

    /// A peer frame: canonical, and what a replica does with each kind runs on it.
    static func peerFrame(_ data: [UInt8]) {
        guard let frame = try? PeerFrame(decoding: data) else { return }
        Self.canonical(frame.encoded(), data, "peer frame")
        switch frame {
        case let .consensus(_, message): _ = message.isInProtocolRange
        case let .fetchBlocks(from, to): _ = PeerFrame.transferRange(from: from, to: to, ledgerHeight: fixture.tip.height)
        case let .blocks(entries): verifyTransferred(entries)
        case .progressQuery: break
        case let .progress(_, report):
            _ = report.isEmptyCluster
            _ = try? report.latest?.certificate.verify(config: fixture.config, verifier: verifier)
        }
    }

    /// A client frame: canonical, and every proof in it checked.
    static func clientFrame(_ data: [UInt8]) {
        guard let frame = try? ClientFrame(decoding: data) else { return }
        Self.canonical(frame.encoded(), data, "client frame")
        if case let .reply(reply) = frame, let result = try? OperationResult(decoding: reply.result) {
            Self.canonical(result.encoded(), reply.result, "operation result")
        }
        if case let .proof(_, bundle) = frame { _ = try? bundle.verify(config: fixture.config) }
        if case let .epochProofs(_, steps) = frame {
            for (i, step) in steps.enumerated() { _ = try? step.verify(from: fixture.config, epoch: UInt64(i)) }
        }
    }

    /// cluster.json, the canonical encoding admins sign, and the replicated governance.
    static func clusterConfig(_ data: [UInt8]) {
        func sound(_ config: ClusterConfig) {
            precondition(config.n >= 4 && config.quorum > 2 * config.f && config.quorum <= config.n, "accepted an unsound cluster")
            precondition(config.admins.isEmpty ? config.adminThreshold == 0 : (1...config.admins.count).contains(config.adminThreshold),
                         "accepted an unsound admin threshold")
        }
        if let config = try? JSONDecoder().decode(ClusterConfig.self, from: Data(data)) { sound(config) }
        if let config = try? ClusterConfig(decoding: data) {
            sound(config)
            Self.canonical(config.encoded(), data, "cluster configuration")
        }
        if let governance = try? Governance(decoding: data) {
            sound(governance.config)
            Self.canonical(governance.encoded(), data, "governance")
            _ = governance.epoch(at: .max)
        }
    }

    /// Inputs that exercise the format from the start: real encodings from a small ledger.
    public func seeds() -> [[UInt8]] {
        let fixture = Self.fixture
        let scenario = ReplicaScenario.committed
        switch self {
        case .peerFrame:
            return scenario.sent.prefix(12).map { PeerFrame.consensus(epoch: 0, $0).encoded() }
                + [PeerFrame.fetchBlocks(from: 1, to: 8).encoded(), PeerFrame.blocks(Array(fixture.entries.prefix(3))).encoded(),
                   PeerFrame.progressQuery(nonce: 9).encoded(),
                   PeerFrame.progress(nonce: 9, ProgressReport(
                       status: .running, epoch: 0, view: 1,
                       latest: CommitProof(header: fixture.entries[2].block.header, certificate: fixture.entries[2].certificate))).encoded()]
        case .clientFrame:
            return Self.clientFrameSeeds()
        case .message:
            return scenario.sent.prefix(24).map { $0.encoded() } + ReplicaScenario.changingView.sent.suffix(6).map { $0.encoded() }
        case .handshake:
            return Self.handshakeSeeds()
        case .blockLog:
            return [[0] + Self.segment(of: fixture), [1] + Self.unframed(Self.segmentRecords(of: fixture))]
        case .wal:
            return Self.walSeeds()
        case .snapshot:
            return [Array(fixture.state.snapshot().dropLast(Digest.byteCount))]
        case .segmentIndex:
            let index = Self.indexedLedger().index
            // The index is one record of type 1; its payload is what follows the 9-byte header.
            return [[0] + index, [1] + Self.unframed([(1, Array(index.dropFirst(9)))])]
        case .clusterConfig:
            return Self.clusterConfigSeeds()
        case .shell:
            // A state transfer started by a checkpoint proof and answered in full, or in part
            // and then after a retry; serving blocks, a client request and a proof request.
            return [[0, 0, 0, 1], [0, 0, 0, 2, 3, 0, 3, 1, 0, 1], [0, 3, 0, 4, 0, 5, 3, 0],
                    [0, 0, 4, 0, 0, 0, 0, 0, 0, 0x27, 0x10, 3, 0, 0, 1, 0, 5]]
        case .replica:
            // Each message kind with each field at each boundary value, and a few choices of
            // each kind of event.
            return ReplicaScenario.boundarySeeds() + (0..<7).map { (kind: Int) -> [UInt8] in
                var input: [UInt8] = [UInt8(kind % 2)]
                for step in 0..<8 {
                    input += [UInt8](repeating: UInt8(step * 13 + kind), count: 8)
                    input.append(UInt8(kind))
                    input += [UInt8](repeating: UInt8(kind * 31 + step), count: 24)
                }
                return input
            }
        }
    }

    /// Every kind of client frame, from the fixture's ledger.
    static func clientFrameSeeds() -> [[UInt8]] {
        let fixture = Self.fixture
        let scenario = ReplicaScenario.committed
        let request = scenario.requests[0]
        return [ClientFrame.request(request).encoded(),
                ClientFrame.reply(ClientReply(requestID: 1, height: 2, result: OperationResult.written(version: 2).encoded())).encoded(),
                ClientFrame.proveRequest(key: Array("key-1".utf8), nonce: 9).encoded(),
                ClientFrame.refused(requestID: 3, .tooLarge(bytes: 200_000, limit: 131_072)).encoded(),
                ClientFrame.proofUnavailable(nonce: 9, reason: "none yet").encoded(),
                ClientFrame.request(Request.signed(by: fixture.clients[0], cluster: fixture.config.clusterID, requestID: 7,
                                                   operation: .approveConfig(Self.approval))).encoded(),
                ClientFrame.fetchBlocks(from: 1, to: 128).encoded(),
                ClientFrame.blocks(Array(fixture.entries.prefix(2))).encoded(),
                ClientFrame.request(Request.signed(by: fixture.clients[0], cluster: fixture.config.clusterID, requestID: 8,
                                                   operation: .approvePolicy(Self.policyApproval))).encoded(),
                ClientFrame.reply(ClientReply(requestID: 8, height: 3, result: OperationResult.permissionDenied(
                    PermissionDenial(operation: .add, key: Array("acct/alice/x".utf8), permission: .write,
                                     prefix: Array("acct/alice/".utf8))).encoded())).encoded(),
                ClientFrame.epochProofsRequest(from: 0, nonce: 3).encoded(),
                ClientFrame.epochProofs(nonce: 3, [EpochProof(certificate: fixture.executionCertificates[0],
                                                              governance: fixture.proveGovernance())]).encoded()]
    }

    /// A WAL of the committed scenario's votes, framed and unframed.
    static func walSeeds() -> [[UInt8]] {
        let scenario = ReplicaScenario.committed
        let fs = SimulatedFileSystem()
        let wal = try! WriteAheadLog(path: "/wal", fileSystem: fs)
        let records: [WALRecord] = scenario.sent.prefix(8).compactMap { message in
            switch message {
            case let .prePrepare(pp): return .sent(.prePrepare(pp))
            case let .prepare(p): return .sent(.prepare(p))
            case let .commit(c): return .sent(.commit(c))
            default: return nil
            }
        }
        try! wal.append(contentsOf: records.map { $0.encoded() })
        return [[0] + fs.bytes("/wal")!, [1] + Self.unframed(records.map { (1, $0.encoded()) })]
    }

    /// cluster.json, a governed configuration's encoding, and governance after an approval.
    static func clusterConfigSeeds() -> [[UInt8]] {
        let fixture = Self.fixture
        var state = KeyValueState(genesis: Self.governed)
        let approving = Request.signed(by: fixture.clients[0], cluster: fixture.config.clusterID, requestID: 1,
                                       operation: .approveConfig(Self.approval))
        _ = try? state.execute(Block(header: BlockHeader(clusterID: fixture.config.clusterID, height: 1, view: 0, timestampMs: 0,
                                                         proposer: 0, prevBlockHash: .zero, txRoot: .zero, historyRoot: .zero),
                                     requests: [approving]))
        return [Array(try! JSONEncoder().encode(fixture.config)), Self.governed.encoded(), state.governance.encoded()]
    }

    // MARK: - Shared fixtures (built once per process)

    /// Builds every shared fixture now. A fuzzer calls this before the first input, so that
    /// nothing allocated once for good is taken for a leak of the input that happened to be first.
    public static func prepare() {
        _ = fixture
        _ = ReplicaScenario.committed
        _ = ReplicaScenario.changingView
        _ = ShellScenario.frames
        _ = handshakeConfig
        _ = indexedLedger()
        for harness in allCases { harness.run(harness.seeds().first ?? []) }
    }

    static let fixture = LedgerFixture.ledger(blocks: 12)
    static let verifier = SignatureVerifier()

    /// A decoded value must encode back to exactly the input: two encodings of one value would
    /// let the same message carry two signatures' worth of bytes, or two hashes.
    static func canonical(_ encoded: [UInt8], _ input: [UInt8], _ what: String) {
        guard encoded != input else { return }
        let at = zip(encoded, input).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(encoded.count, input.count)
        preconditionFailure("a \(what) decoded from bytes that are not its canonical encoding: "
                            + "\(input.count) bytes in, \(encoded.count) out, first difference at byte \(at) "
                            + "(in \(Hex.encode(input[at..<min(input.count, at + 8)])), out \(Hex.encode(encoded[at..<min(encoded.count, at + 8)])))")
    }

    /// Storage files check every record's checksum, which random mutations break: the first
    /// byte chooses between the rest as it is (odd: no) and the rest read as records
    /// `[type u8][length u16][payload]`, each framed with a valid length and checksum, so the
    /// decoders behind the checksums are reached too.
    static func framed(_ data: [UInt8]) -> [UInt8] {
        guard let mode = data.first else { return [] }
        let rest = Array(data.dropFirst())
        guard mode & 1 == 1 else { return rest }
        var input = InputReader(rest)
        var out: [UInt8] = []
        while !input.isAtEnd {
            let type = input.byte()
            out += RecordFraming.frame(type: type, payload: input.chunk(max: 1 << 16))
        }
        return out
    }

    /// The inverse of `framed`'s record form, for seeds.
    static func unframed(_ records: [(type: UInt8, payload: [UInt8])]) -> [UInt8] {
        records.flatMap { [$0.type, UInt8($0.payload.count >> 8), UInt8($0.payload.count & 0xff)] + $0.payload }
    }

    /// The fixture's ledger as block-log records (1: block with certificate, 2: execution
    /// certificate), whose payloads fit `framed`'s 16-bit lengths.
    static func segmentRecords(of fixture: LedgerFixture) -> [(type: UInt8, payload: [UInt8])] {
        var records: [(type: UInt8, payload: [UInt8])] = []
        var certificates = fixture.executionCertificates[...]
        for entry in fixture.entries {
            records.append((1, entry.encoded()))
            if let certificate = certificates.first, certificate.height == entry.block.height {
                records.append((2, certificate.encoded()))
                certificates = certificates.dropFirst()
            }
        }
        return records
    }

    static func write(_ bytes: [UInt8], to path: String, in fs: SimulatedFileSystem) {
        let file = try! fs.open(path, create: true)
        try! file.append(bytes)
        try! file.sync()
        file.close()
    }

    /// The fixture's cluster with one admin, and that admin's approval of a configuration
    /// without replica 3 (which, with threshold 1, schedules the change).
    static let adminKey = PrivateKey(seed: Array(repeating: 0xad, count: 32))!
    static let governed = try! ClusterConfig(clusterID: fixture.config.clusterID, validators: fixture.config.validators,
                                             parameters: fixture.config.parameters, admins: [adminKey.publicKey])
    /// A policy change with one edit of each kind, approved by an admin.
    static let policyApproval = PolicyApprovalRequest(
        cluster: fixture.config.clusterID, epoch: 0, sequence: 0,
        edits: [.grant(role: "owner", Grant(permission: .write, prefix: Array("acct/{client}/".utf8))),
                .revoke(role: "owner", Grant(permission: .credit, prefix: [])),
                .bind(Binding(name: "alice", client: fixture.clients[0].publicKey, roles: ["owner"])), .unbind(name: "bob")],
        adminKey: adminKey)

    static let approval: ConfigApprovalRequest = {
        var validators = fixture.config.validators
        validators[3].publicKey = PrivateKey(seed: Array(repeating: 0x3e, count: 32))!.publicKey
        let next = try! ClusterConfig(clusterID: fixture.config.clusterID, validators: validators,
                                      parameters: fixture.config.parameters, admins: [adminKey.publicKey])
        return ConfigApprovalRequest(epoch: 0, config: next, adminKey: adminKey)
    }()

    /// Blocks served in state transfer are checked as a replica checks them.
    static func verifyTransferred(_ entries: [LedgerEntry]) {
        var tip = ChainTip.genesis
        for entry in entries {
            guard let next = try? tip.verifyNext(entry, config: fixture.config, epoch: 0, verifier: verifier) else { return }
            tip = next
        }
    }

    static func segment(of fixture: LedgerFixture) -> [UInt8] {
        let fs = SimulatedFileSystem()
        let log = try! BlockLog(directory: "/blocks", fileSystem: fs)
        var certificates = fixture.executionCertificates[...]
        for entry in fixture.entries {
            try! log.append(entry)
            if let certificate = certificates.first, certificate.height == entry.block.height {
                try! log.append(certificate)
                certificates = certificates.dropFirst()
            }
        }
        try! log.sync()
        return fs.bytes("/blocks/" + BlockLogReader.segmentName(1))!
    }

    /// Any bytes as a segment: the reader, the writer's recovery and every block read must
    /// not trap, and what is read back must be what the chain and the certificates vouch for.
    static func blockLog(_ data: [UInt8]) {
        let fs = SimulatedFileSystem()
        try! fs.createDirectory("/blocks")
        write(data, to: "/blocks/" + BlockLogReader.segmentName(1), in: fs)
        guard let reader = try? BlockLogReader(directory: "/blocks", fileSystem: fs) else { return }
        var tip = ChainTip.genesis
        for height in stride(from: Height(1), through: reader.height, by: 1) {
            guard let entry = try? reader.entry(at: height) else { break }
            guard let next = try? tip.verifyNext(entry, config: fixture.config, epoch: 0, verifier: verifier) else { break }
            tip = next
        }
        if let log = try? BlockLog(directory: "/blocks", fileSystem: fs), log.damage != nil { try? log.truncateDamage() }
        followed(data, reader: reader)
    }

    /// The same bytes landing in two writes under a follower (`LogTail`): it never takes a
    /// block the reader does not hold at that height, and takes nothing once it found damage.
    static func followed(_ data: [UInt8], reader: BlockLogReader) {
        let fs = SimulatedFileSystem()
        try! fs.createDirectory("/blocks")
        let path = "/blocks/" + BlockLogReader.segmentName(1)
        let split = data.isEmpty ? 0 : Int(data[0]) * data.count / 256
        write(Array(data[..<split]), to: path, in: fs)
        var tail = LogTail(directory: "/blocks", fileSystem: fs)
        var taken = (try? tail.poll()) ?? []
        if let file = try? fs.open(path, create: false) {
            try? file.append(Array(data[split...]))
            file.close()
        }
        let damaged = tail.damage != nil
        let more = (try? tail.poll()) ?? []
        precondition(!damaged || more.isEmpty, "the follower read past damage")
        taken += more
        let blocks = taken.compactMap { item -> LedgerEntry? in if case let .entry(entry) = item { return entry } else { return nil } }
        for (index, entry) in blocks.prefix(Int(reader.height)).enumerated() {
            precondition(entry.block.hash == reader.blockHash(at: Height(index + 1)), "the follower and the reader disagree")
        }
    }

    /// A ledger of two segments (the first sealed, so it gets an index) and that index's bytes.
    static func indexedLedger() -> (fs: SimulatedFileSystem, index: [UInt8]) {
        let fs = SimulatedFileSystem()
        let log = try! BlockLog(directory: "/blocks", fileSystem: fs, segmentBytesMax: 4096)
        for entry in fixture.entries { try! log.append(entry) }
        try! log.sync()
        let index = fs.bytes("/blocks/" + BlockLogReader.segmentName(1).replacingOccurrences(of: ".log", with: ".idx")) ?? []
        return (fs, index)
    }

    /// Any bytes as the first segment's index: the reader may use it only if it fits, so the
    /// blocks read are exactly the ledger's whatever the index says.
    static func segmentIndex(_ data: [UInt8]) {
        let (fs, _) = indexedLedger()
        let path = "/blocks/" + BlockLogReader.segmentName(1).replacingOccurrences(of: ".log", with: ".idx")
        try? fs.remove(path)
        write(data, to: path, in: fs)
        guard let reader = try? BlockLogReader(directory: "/blocks", fileSystem: fs, useSegmentIndexes: true) else { return }
        for height in stride(from: Height(1), through: min(reader.height, fixture.tip.height), by: 1) {
            guard let entry = try? reader.entry(at: height) else { continue }
            precondition(entry == fixture.entries[Int(height) - 1], "an index made the reader return another block at \(height)")
        }
    }

    static let handshakeKeys = (0..<4).map { PrivateKey(seed: [UInt8($0 + 1), 0xa5] + Array(repeating: 0, count: 30))! }
    static let handshakeConfig = try! ClusterConfig.layout(keys: handshakeKeys.map(\.publicKey), host: "127.0.0.1", basePort: 7100,
                                                           clusterID: ClusterID(raw: Bytes32(Array(repeating: 0xa5, count: 32))!))

    /// A handshake message as the first and as the second one an acceptor receives, and as the
    /// challenge a connector receives.
    static func handshake(_ data: [UInt8]) {
        guard let message = try? HandshakeMessage(decoding: data) else { return }
        precondition(message.encoded() == data, "a handshake message decoded from bytes that are not its canonical encoding")
        let nonce = Digest.sha256([1])
        var acceptor = HandshakeAcceptor(config: handshakeConfig, id: 0, key: handshakeKeys[0], nonce: nonce,
                                         exchange: ExchangeKeyPair(seed: Array(repeating: 3, count: 32))!)
        _ = try? acceptor.receive(hello: message)
        var honest = acceptor
        let hello = HandshakeConnector(config: handshakeConfig, role: .replica(1), key: handshakeKeys[1], nonce: nonce,
                                       exchange: ExchangeKeyPair(seed: Array(repeating: 4, count: 32))!, expected: 0)
        _ = try? honest.receive(hello: hello.hello)
        _ = try? honest.receive(response: message)
        _ = try? hello.receive(challenge: message)
    }

    static func handshakeSeeds() -> [[UInt8]] {
        let nonce = Digest.sha256([1])
        let connector = HandshakeConnector(config: handshakeConfig, role: .replica(1), key: handshakeKeys[1], nonce: nonce,
                                           exchange: ExchangeKeyPair(seed: Array(repeating: 4, count: 32))!, expected: 0)
        var acceptor = HandshakeAcceptor(config: handshakeConfig, id: 0, key: handshakeKeys[0], nonce: nonce,
                                         exchange: ExchangeKeyPair(seed: Array(repeating: 3, count: 32))!)
        let challenge = try! acceptor.receive(hello: connector.hello)
        let (response, _) = try! connector.receive(challenge: challenge)
        return [connector.hello.encoded(), challenge.encoded(), response.encoded()]
    }
}
