import BulwarkConsensus
import BulwarkCore
import BulwarkShell
import BulwarkStorage
import Logging

/// The structure-aware `shell` harness: the production replica shell (replica 3 of the shared
/// fixture's cluster), recovered from a disk that holds the first checkpoint of the fixture's
/// ledger, fed frames through `ShellIntake` exactly as a driver feeds it: peer frames from any
/// peer, client frames, timers and time. Valid frames from the fixture (a checkpoint proof
/// that starts a state transfer, the blocks that answer it, block requests, client requests,
/// proof requests) make the state-transfer, serving and proof paths reachable.
///
/// Oracles: nothing traps; no input makes the shell stop (an honest replica must not be
/// stoppable by what peers or clients send); and every block it holds is the fixture's block
/// at that height (it stores only what it verified).
final class ShellScenario: ShellNetwork, ShellClock {
    static let replica: ReplicaID = 3
    static let recoveredHeight: Height = 4
    var nowMs: UInt64 = 1_700_000_000_000
    var monotonicNs: UInt64 { nowMs &* 1_000_000 }
    var timers: [ShellTimer] = []
    var sent = 0

    func send(_ frame: [UInt8], to peer: ReplicaID, afterMs: UInt64) { sent += 1 }
    func send(_ frame: [UInt8], toClient client: PublicKey) { sent += 1 }
    func configure(_ config: ClusterConfig) {}
    func schedule(_ timer: ShellTimer, afterMs: UInt64) { if timers.count < 64 { timers.append(timer) } }

    /// The disk the shell recovers from: blocks 1…4 of the fixture and the execution
    /// certificate at 4.
    static func disk() -> SimulatedFileSystem {
        let fixture = FuzzHarness.fixture
        let fs = SimulatedFileSystem()
        let log = try! BlockLog(directory: "/data/blocks", fileSystem: fs)
        for entry in fixture.entries.prefix(Int(recoveredHeight)) { try! log.append(entry) }
        try! log.append(fixture.executionCertificates.first { $0.height == recoveredHeight }!)
        try! log.sync()
        return fs
    }

    /// Valid frames to draw from: (from peer, or nil for the client, bytes).
    static let frames: [(peer: ReplicaID?, bytes: [UInt8])] = {
        let fixture = FuzzHarness.fixture
        let last = fixture.executionCertificates.last!
        let header = fixture.entries[Int(last.height) - 1].block.header
        let historyBefore = fixture.entries.prefix(Int(last.height) - 1).reduce(into: MerkleAccumulator()) {
            $0.append(leafHash: MerkleTree.leafHash($1.block.hash))
        }
        let proof = CheckpointProof(certificate: last, header: header, historyBefore: historyBefore)
        let request = fixture.entries.last!.block.requests.first!
        return [
            (1, PeerFrame.consensus(epoch: 0, .checkpointProof(proof)).encoded()),
            (2, PeerFrame.blocks(Array(fixture.entries[Int(recoveredHeight)...])).encoded()),
            (1, PeerFrame.blocks(Array(fixture.entries[Int(recoveredHeight)..<8])).encoded()),
            (0, PeerFrame.fetchBlocks(from: 1, to: 4).encoded()),
            (3, PeerFrame.progressQuery(nonce: 5).encoded()),
            (nil, ClientFrame.request(request).encoded()),
            (nil, ClientFrame.proveRequest(key: Array("key-1".utf8), nonce: 7).encoded()),
        ]
    }()

    static func fuzz(_ data: [UInt8]) {
        let shell = run(data)
        let fixture = FuzzHarness.fixture
        precondition(shell.faulted == nil, "input from peers and a client stopped the replica: \(shell.faulted ?? "")")
        precondition(shell.height >= recoveredHeight, "the replica lost blocks it had")
        for height in stride(from: Height(1), through: shell.height, by: 1) {
            precondition(shell.blockLog.blockHash(at: height) == fixture.entries[Int(height) - 1].block.hash,
                         "the replica stored a block at height \(height) that is not the cluster's")
        }
    }

    /// The shell after `data`'s steps.
    static func run(_ data: [UInt8]) -> ReplicaShell {
        let io = ShellScenario()
        let fixture = FuzzHarness.fixture
        let fs = disk()
        let shell = try! ReplicaShell(config: fixture.config, id: replica, key: fixture.keys[Int(replica)], dataDirectory: "/data",
                                      startup: .probe, fileSystem: fs, network: io, clock: io, workers: InlineWorkers(),
                                      logger: Logger(label: "fuzz", factory: { _ in SwiftLogNoOpLogHandler() }),
                                      snapshotInterval: 4, scrubIntervalMs: 1000, verifier: FuzzHarness.verifier)
        let intake = ShellIntake(config: fixture.config, verifier: FuzzHarness.verifier)
        let client = fixture.clients[0].publicKey
        shell.start()
        var input = InputReader(data)
        var steps = 0
        // Frames that arrived together reach the shell in one call, as a driver's loop hands
        // over its inbox: the group-commit path runs under the fuzzer too.
        var arrived: [ShellInput] = []
        func handOver() {
            if !arrived.isEmpty { shell.handle(arrived) }
            arrived = []
        }
        while !input.isAtEnd && steps < 48 {
            steps += 1
            let selector = input.byte()
            let outcome: ShellIntake.Outcome
            switch selector % 5 {
            case 0:
                let frame = frames[Int(input.byte()) % frames.count]
                outcome = frame.peer.map { intake.peer(frame.bytes, from: $0) }
                    ?? intake.client(frame.bytes, from: client, answeringThrough: io)
            case 1: outcome = intake.peer(input.chunk(max: 1 << 16), from: ReplicaID(input.byte() % 3))
            case 2: outcome = intake.client(input.chunk(max: 1 << 16), from: client, answeringThrough: io)
            case 3:
                handOver()
                guard !io.timers.isEmpty else { continue }
                shell.fire(io.timers.remove(at: Int(input.byte()) % io.timers.count))
                continue
            default:
                handOver()
                io.nowMs &+= input.uint64() % 100_000
                continue
            }
            if case let .accepted(item) = outcome { arrived.append(item) }
            // The selector's high bit: the loop's turn comes before the next frame arrives.
            if selector & 0x80 != 0 { handOver() }
        }
        handOver()
        return shell
    }
}
