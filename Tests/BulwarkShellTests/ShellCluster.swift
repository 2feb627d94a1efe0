import BulwarkConsensus
import BulwarkCore
import BulwarkShell
import BulwarkStorage
import Logging

/// The third driver of `ReplicaShell`: a test drives a few shells by hand. Frames wait in one
/// queue until the test delivers (or drops) them; time moves only when the test advances it;
/// each shell has a simulated disk of its own. Every loop here is bounded.
final class ShellCluster {
    let config: ClusterConfig
    let keys: [PrivateKey]
    let client = PrivateKey(seed: [0xc1, 0x5e] + Array(repeating: 0, count: 30))!
    let verifier = SignatureVerifier()
    let intake: ShellIntake
    var disks: [SimulatedFileSystem]
    var shells: [ReplicaShell?]
    var ios: [TestIO] = []
    var nowMs: UInt64 = 1_700_000_000_000
    /// Frames in flight, oldest first.
    var frames: [Frame] = []
    var timers: [(at: UInt64, shell: Int, timer: ShellTimer, incarnation: Int)] = []
    /// What clients received, by replica.
    var replies: [Int: [ClientReply]] = [:]
    /// Every other frame clients received, by replica.
    var clientFrames: [Int: [ClientFrame]] = [:]
    /// Every frame each client received.
    var framesTo: [PublicKey: [ClientFrame]] = [:]
    var notices: [Int: [ShellNotice]] = [:]
    var requestID: UInt64 = 0

    struct Frame {
        var from: Int
        var to: Destination
        var bytes: [UInt8]
        /// The client a frame from a client (`from` < 0) comes from: the test's by default.
        var client: PublicKey?
        var peerFrame: PeerFrame? { try? PeerFrame(decoding: bytes) }
    }

    enum Destination: Equatable {
        case replica(Int)
        case client(PublicKey)
    }

    let segmentBytesMax: UInt64

    init(checkpointInterval: Height = 4, watermarkWindow: Height = 16, segmentBytesMax: UInt64 = BlockLog.segmentBytesDefault,
         admins: [PublicKey] = [], policy: ClientPolicy = .open, startup: ShellStartup = .genesis,
         frameBytesMax: Int? = nil) {
        self.segmentBytesMax = segmentBytesMax
        keys = (0..<4).map { PrivateKey(seed: [UInt8($0 + 1), 0x5e] + Array(repeating: 0, count: 30))! }
        var parameters = ProtocolParameters()
        parameters.checkpointInterval = checkpointInterval
        parameters.watermarkWindow = watermarkWindow
        parameters.batchRequestsMax = 4
        parameters.batchDelayMs = 1
        parameters.viewChangeTimeoutMs = 8_000
        parameters.stateTransferTimeoutMs = 500
        if let frameBytesMax {
            parameters.frameBytesMax = frameBytesMax
            parameters.requestBytesMax = frameBytesMax / 2
            parameters.batchBytesMax = frameBytesMax / 2
        }
        config = try! ClusterConfig.layout(keys: keys.map(\.publicKey), host: "127.0.0.1", basePort: 7100,
                                           clusterID: ClusterID(raw: Bytes32(Array(repeating: 0x5e, count: 32))!),
                                           parameters: parameters, admins: admins, policy: policy)
        intake = ShellIntake(config: config, verifier: verifier)
        disks = (0..<4).map { _ in SimulatedFileSystem() }
        shells = Array(repeating: nil, count: 4)
        for i in 0..<4 { try! start(i, startup: startup) }
    }

    /// Starts (or restarts) replica `i` from its disk.
    func start(_ i: Int, startup: ShellStartup = .genesis) throws {
        let io = TestIO(cluster: self, replica: i, incarnation: (ios.count > i ? ios[i].incarnation : 0) + 1)
        if ios.count > i { ios[i] = io } else { ios.append(io) }
        let shell = try ReplicaShell(config: config, id: ReplicaID(i), key: keys[i], dataDirectory: "/data",
                                      startup: startup, fileSystem: disks[i], network: io, clock: io, workers: InlineWorkers(),
                                      logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }),
                                      snapshotInterval: 0, segmentBytesMax: segmentBytesMax, scrubIntervalMs: 0,
                                      verifier: verifier)
        shell.notify = { [unowned self] notice in notices[i, default: []].append(notice) }
        shells[i] = shell
        shell.start()
    }

    func shell(_ i: Int) -> ReplicaShell { shells[i]! }

    /// Replica `i` loses its disk (wiped or replaced) and starts again from nothing.
    func wipe(_ i: Int, startup: ShellStartup) throws {
        shells[i] = nil
        disks[i].wipe()
        try start(i, startup: startup)
    }

    /// A signed put from the test's client, sent to `replicas`.
    @discardableResult
    func request(to replicas: [Int]) -> Request {
        request(.put(key: Array("k\((requestID + 1) % 5)".utf8), value: Array("v\(requestID + 1)".utf8)), to: replicas)
    }

    /// `operation`, signed by `key` (the test's client by default), sent to `replicas`.
    @discardableResult
    func request(_ operation: LedgerOperation, to replicas: [Int], by key: PrivateKey? = nil) -> Request {
        requestID += 1
        let signer = key ?? client
        let request = Request.signed(by: signer, cluster: config.clusterID, requestID: requestID, operation: operation)
        for i in replicas {
            frames.append(Frame(from: -1, to: .replica(i), bytes: ClientFrame.request(request).encoded(), client: signer.publicKey))
        }
        return request
    }

    /// Delivers frames that `accept` lets through (the others are dropped) and fires the timers
    /// due, until nothing is left to do at this time; then moves time on by `stepMs` and goes
    /// on, for `rounds` rounds. The frames in flight arrive together: each replica's shell
    /// takes those addressed to it in one `handle` call, as a driver's loop drains its inbox.
    func run(rounds: Int = 1, stepMs: UInt64 = 10, accept: (Frame) -> Bool = { _ in true }) {
        for round in 0..<rounds {
            if round > 0 { nowMs += stepMs }
            var work = 0
            while work < 100_000 {
                if !frames.isEmpty {
                    let arrived = frames
                    frames = []
                    deliver(arrived.filter(accept))
                } else if let due = timers.indices.filter({ timers[$0].at <= nowMs }).first {
                    let timer = timers.remove(at: due)
                    if ios[timer.shell].incarnation == timer.incarnation { shells[timer.shell]?.fire(timer.timer) }
                } else {
                    break
                }
                work += 1
            }
        }
    }

    func deliver(_ frame: Frame) { deliver([frame]) }

    /// Delivers frames that arrived together: each replica's accepted inputs in one call, in
    /// the order they arrived.
    func deliver(_ arrived: [Frame]) {
        var inputs: [Int: [ShellInput]] = [:]
        for frame in arrived {
            switch frame.to {
            case let .replica(i):
                guard shells[i] != nil else { continue }
                let outcome = frame.from < 0 ? intake.client(frame.bytes, from: frame.client ?? client.publicKey, answeringThrough: ios[i])
                    : intake.peer(frame.bytes, from: ReplicaID(frame.from))
                if case let .accepted(input) = outcome { inputs[i, default: []].append(input) }
            case let .client(key):
                guard let decoded = try? ClientFrame(decoding: frame.bytes) else { continue }
                framesTo[key, default: []].append(decoded)
                if case let .reply(reply) = decoded, key == client.publicKey {
                    replies[frame.from, default: []].append(reply)
                } else {
                    clientFrames[frame.from, default: []].append(decoded)
                }
            }
        }
        for i in inputs.keys.sorted() { shells[i]?.handle(inputs[i]!) }
    }
}

/// One shell's network and clock in a `ShellCluster`.
final class TestIO: ShellNetwork, ShellClock {
    unowned let cluster: ShellCluster
    let replica: Int
    let incarnation: Int
    /// Called at every send, before the frame is queued: for tests of what must be durable first.
    var onSend: ((ShellCluster.Frame) -> Void)?

    init(cluster: ShellCluster, replica: Int, incarnation: Int) {
        self.cluster = cluster
        self.replica = replica
        self.incarnation = incarnation
    }

    func send(_ frame: [UInt8], to peer: ReplicaID, afterMs: UInt64) {
        let frame = ShellCluster.Frame(from: replica, to: .replica(Int(peer)), bytes: frame)
        onSend?(frame)
        cluster.frames.append(frame)
    }

    func send(_ frame: [UInt8], toClient client: PublicKey) {
        let frame = ShellCluster.Frame(from: replica, to: .client(client), bytes: frame)
        onSend?(frame)
        cluster.frames.append(frame)
    }

    /// The test network routes by replica id and authenticates nothing: no state to change.
    func configure(_ config: ClusterConfig) {}

    var nowMs: UInt64 { cluster.nowMs }
    var monotonicNs: UInt64 { cluster.nowMs &* 1_000_000 }

    func schedule(_ timer: ShellTimer, afterMs: UInt64) {
        cluster.timers.append((cluster.nowMs + afterMs, replica, timer, incarnation))
    }
}
