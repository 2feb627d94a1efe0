@_exported import BulwarkShell
import BulwarkConsensus
import BulwarkCore
import BulwarkStorage
import BulwarkTransport
import Foundation
import Logging
import Metrics
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// A replica process (ARCHITECTURE.md §5): the NIO driver of a `ReplicaShell`. The transport runs on
/// I/O threads, which also decode frames and pre-verify signatures (`ShellIntake`), so checks
/// run on every core; the shell runs on one serial event loop; reading answers for peers and
/// clients, and writing snapshots, run on queues of their own; `/status` and `/metrics` are
/// served over HTTP. Everything the replica decides happens in the shell.
public final class ReplicaNode: @unchecked Sendable {
    /// The configuration in force when the replica started (its ledger's epoch).
    public let config: ClusterConfig
    public let id: ReplicaID
    public var logger: Logger { shell.logger }
    let verifier: SignatureVerifier
    let intake: ShellIntake
    let ioGroup: MultiThreadedEventLoopGroup
    let coreGroup: MultiThreadedEventLoopGroup
    let loop: any EventLoop
    let io: NodeIO
    /// Touched only on `loop` once started.
    let shell: ReplicaShell
    var transport: Transport!
    var statusChannel: (any Channel)?
    /// Everything from the network waiting for the core loop (ARCHITECTURE.md §5: a bounded inbox
    /// with back-pressure). Events that arrive while the loop is busy are handed to the shell
    /// together and share one WAL fsync (group commit for consensus records). Past half its
    /// bounds the transport stops reading until the loop has drained it; at its bounds input is
    /// dropped and counted (consensus retransmits, clients retry).
    let inbox = NIOLockedValueBox(Inbox())
    static let inboxItemsMax = 8192
    static let inboxBytesMax = 64 << 20

    struct Inbox {
        var items: [ShellInput] = []
        var bytes = 0
        var scheduled = false
        var paused = false
    }

    /// Descriptors kept free of connections for storage (segments, WAL, key history, snapshots)
    /// and the runtime: running out of sockets must never become a storage fault.
    public static let descriptorsReserved = 256
    public var faulted: String? { shell.faulted }
    /// Called once, on `loop`, when a new epoch no longer lists this replica with its key:
    /// the process exits without being restarted. Set before `start`.
    public var onRetire: ((String) -> Void)? {
        get { shell.onRetire }
        set { shell.onRetire = newValue }
    }
    /// Called once, on `loop`, when the replica faults: a process exits so that its supervisor
    /// restarts it (recovery from disk is the one path back). Nil: the replica only stops.
    /// Set before `start`.
    public var onFault: ((String) -> Void)? {
        get { shell.onFault }
        set { shell.onFault = newValue }
    }
    /// Set only by fault-injection runs (`bulwark-byzantine`), before `start`.
    public var interceptor: Interceptor? {
        get { shell.interceptor }
        set { shell.interceptor = newValue }
    }
    public typealias Interceptor = ReplicaShell.Interceptor
    /// An authenticated client connection with no traffic this long is closed (0: never); set
    /// before `start`.
    public var clientIdleTimeoutMs: Int64 = 120_000
    let metrics: NodeMetrics
    let key: PrivateKey

    /// Snapshots of the state are written every `snapshotInterval` blocks (rounded up to a
    /// checkpoint height; 0 for never), so a restart replays only the blocks after the newest.
    /// `config` is cluster.json (epoch 0); the replica serves the epoch its ledger reached, as
    /// the validator that epoch lists with `key` (`id`, when given, must be that validator).
    public init(config genesis: ClusterConfig, id expectedID: ReplicaID? = nil, key: PrivateKey, dataDirectory: String,
                startup: ShellStartup = .probe, logger: Logger, snapshotInterval: Height = 1024) throws {
        self.key = key
        verifier = SignatureVerifier()
        ioGroup = MultiThreadedEventLoopGroup(numberOfThreads: max(1, System.coreCount))
        coreGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        loop = coreGroup.next()
        io = NodeIO(loop: loop)
        do {
            shell = try ReplicaShell(config: genesis, id: expectedID, key: key, dataDirectory: dataDirectory,
                                     startup: startup, network: io,
                                     clock: io, workers: io, logger: logger, snapshotInterval: snapshotInterval,
                                     verifier: verifier)
        } catch {
            try? ioGroup.syncShutdownGracefully()
            try? coreGroup.syncShutdownGracefully()
            throw error
        }
        let current = shell.config, ownID = shell.id
        config = current
        id = ownID
        intake = ShellIntake(config: current, verifier: verifier, replica: ownID)
        metrics = NodeMetrics(replica: ownID, peers: current.validators.map(\.id).filter { $0 != ownID })
        io.shell = shell
        io.reconfigure = { [unowned self] next in reconfigure(next) }
        let metrics = self.metrics
        shell.notify = { notice in metrics.record(notice) }
        io.dropped = { metrics.drop(.rateLimited) }
    }

    /// Binds the replica and client addresses and starts consensus.
    public func start() async throws {
        let validator = config.validator(id)!
        var settings = Transport.Settings(frameBytesMax: config.parameters.frameBytesMax)
        settings.inboundConnectionsMax = Self.inboundConnectionsMax()
        settings.frameBytesMaxFollowsConfig = true
        settings.clientIdleTimeoutMs = clientIdleTimeoutMs
        settings.trustedSources = Set(config.validators.map(\.replicaAddress.host))
        transport = Transport(group: ioGroup, config: config, role: .replica(id), key: key, settings: settings,
                              logger: logger, onFrame: { [self] role, bytes in received(role, bytes) })
        io.transport = transport
        for address in [validator.replicaAddress, validator.clientAddress] {
            do { _ = try await transport.listen(host: address.host, port: Int(address.port)) } catch {
                throw NodeStartupError("cannot listen on \(address): \(error)")
            }
        }
        do { try await startStatusServer(at: validator.httpAddress) } catch {
            throw NodeStartupError("cannot listen on \(validator.httpAddress): \(error)")
        }
        try await loop.submit { [self] in shell.start() }.get()
        logger.info("serving", metadata: ["replicas": "\(validator.replicaAddress)", "clients": "\(validator.clientAddress)"])
    }

    public func stop() async {
        _ = try? await loop.submit { [self] in shell.stop() }.get()
        // Let a snapshot being written finish (an interrupted one is never half visible).
        await withCheckedContinuation { done in io.snapshotQueue.async { done.resume() } }
        await transport?.shutdown()
        try? await statusChannel?.close()
        try? await ioGroup.shutdownGracefully()
        try? await coreGroup.shutdownGracefully()
    }

    /// A new epoch (on `loop`): the transport reaches and accepts its validators, the intake
    /// pre-checks their signatures, and this replica listens where the epoch says it does.
    func reconfigure(_ next: ClusterConfig) {
        transport?.update(config: next)
        intake.update(next)
        guard let transport, let validator = next.validator(id) else { return }
        let wanted = [validator.replicaAddress, validator.clientAddress]
        let transportRef = Unchecked(transport)
        let logger = self.logger
        let http = validator.httpAddress
        let moveStatus = statusChannel?.localAddress?.port != Int(http.port)
        Task { [self] in
            await transportRef.value.listenOnly(at: wanted.map { ($0.host, Int($0.port)) }, logger: logger)
            guard moveStatus else { return }
            let old = statusChannel
            do {
                try await startStatusServer(at: http)
                try? await old?.close()
            } catch {
                logger.error("cannot serve /status at the address of the new epoch", metadata: ["address": "\(http)", "error": "\(error)"])
            }
        }
    }

    /// Inbound connections this process can hold: its descriptor limit less the reserve.
    static func inboundConnectionsMax() -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 512 }
        // Unlimited (all bits set) and huge limits alike count as a million descriptors.
        let soft = Int(min(UInt64(limit.rlim_cur), 1 << 20))
        return max(16, soft - descriptorsReserved)
    }

    /// Sends `frame` to replica `peer` as it is. For fault-injection drivers, which send what
    /// the honest shell never would.
    public func send(_ frame: PeerFrame, to peer: ReplicaID) {
        transport.send(frame.encoded(), to: peer)
    }

    // MARK: Input (I/O threads)

    func received(_ role: PeerRole, _ bytes: [UInt8]) {
        let outcome: ShellIntake.Outcome
        switch role {
        case let .replica(peer): outcome = intake.peer(bytes, from: peer)
        case let .client(client):
            outcome = intake.client(bytes, from: client, answeringThrough: io)
        }
        switch outcome {
        case let .accepted(input):
            if case .event(.clientRequest) = input { metrics.clientRequests.increment() }
            enqueue(input, bytes: bytes.count)
        case let .dropped(reason):
            metrics.drop(reason)
        }
    }

    /// Queues `input` for the core loop within the inbox's bounds; past half of them, asks the
    /// transport to stop reading until the loop drained the inbox.
    func enqueue(_ input: ShellInput, bytes: Int) {
        let (accepted, schedule, pause) = inbox.withLockedValue { inbox -> (Bool, Bool, Bool) in
            guard inbox.items.count < Self.inboxItemsMax, inbox.bytes < Self.inboxBytesMax else { return (false, false, false) }
            inbox.items.append(input)
            inbox.bytes += bytes
            let pause = !inbox.paused && (inbox.items.count >= Self.inboxItemsMax / 2 || inbox.bytes >= Self.inboxBytesMax / 2)
            if pause { inbox.paused = true }
            defer { inbox.scheduled = true }
            return (true, !inbox.scheduled, pause)
        }
        guard accepted else {
            metrics.drop(.inboxFull)
            return
        }
        if pause { transport.pauseReading() }
        if schedule { loop.execute { [self] in drain() } }
    }

    /// Hands everything queued to the shell at once.
    func drain() {
        let (items, paused) = inbox.withLockedValue { inbox -> ([ShellInput], Bool) in
            inbox.scheduled = false
            defer {
                inbox.items.removeAll(keepingCapacity: true)
                inbox.bytes = 0
                inbox.paused = false
            }
            return (inbox.items, inbox.paused)
        }
        defer { if paused { transport.resumeReading() } }
        metrics.inboxDepth.record(items.count)
        shell.handle(items)
        updateGauges()
    }

    func updateGauges() {
        let core = shell.core
        metrics.committedHeight.record(shell.height)
        metrics.view.record(core.view)
        metrics.stableCheckpoint.record(core.lowWatermark)
        metrics.changingView.record(core.isChangingView ? 1 : 0)
        metrics.rejoining.record(core.rejoining != nil || shell.isProbing ? 1 : 0)
        // The unknown floor (still asking) is all ones: reported as 0 beside `rejoining` 1.
        let floor = core.signingFloor.flatMap { $0.isUnknown ? nil : $0 }
        metrics.rejoinFloorHeight.record(floor?.height ?? 0)
        metrics.rejoinFloorView.record(Int64(clamping: floor?.view ?? 0))
        for (peer, gauge) in metrics.peerHeight {
            let height = core.peerHeights[peer] ?? 0
            gauge.record(height)
            metrics.peerLag[peer]?.record(shell.height > height ? shell.height - height : 0)
        }
        for link in transport?.links ?? [] {
            metrics.peerConnected[link.replica]?.record(link.state == .up ? 1 : 0)
            metrics.peerQueuedFrames[link.replica]?.record(link.queuedFrames)
        }
    }
}

/// The shell's network, clock and workers over NIO: frames go out through the transport,
/// timers run on the shell's loop, serving work on a queue of its own within a bound, and
/// snapshots on another, one at a time.
final class NodeIO: ShellNetwork, ShellClock, ShellWorkers, @unchecked Sendable {
    let loop: any EventLoop
    var transport: Transport?
    /// Set by the node: what a new epoch changes outside the shell.
    var reconfigure: (ClusterConfig) -> Void = { _ in }
    weak var shell: ReplicaShell?
    /// Counts serving work dropped at the bound.
    var dropped: () -> Void = {}
    let snapshotQueue = DispatchQueue(label: "bulwark.snapshots")
    /// One queue per serving class, each with its own bound: a client flood of proof or
    /// block requests never delays nor crowds out a peer's state transfer.
    let peerServing = DispatchQueue(label: "bulwark.serving.peers")
    let clientServing = DispatchQueue(label: "bulwark.serving.clients")
    let servingPending = NIOLockedValueBox([ServingClass: Int]())
    static let servingPendingMax: [ServingClass: Int] = [.peer: 8, .client: 16]

    init(loop: any EventLoop) { self.loop = loop }

    func send(_ frame: [UInt8], to peer: ReplicaID, afterMs: UInt64) {
        guard let transport else { return }
        if afterMs == 0 { return transport.send(frame, to: peer) }
        loop.scheduleTask(in: .milliseconds(Int64(min(afterMs, 3_600_000)))) { transport.send(frame, to: peer) }
    }

    func send(_ frame: [UInt8], toClient client: PublicKey) { transport?.send(frame, toClient: client) }

    func isReading(client: PublicKey) -> Bool { transport?.isReading(client: client) ?? true }

    func configure(_ config: ClusterConfig) { reconfigure(config) }

    var nowMs: UInt64 { UInt64(Date().timeIntervalSince1970 * 1000) }
    var monotonicNs: UInt64 { NIODeadline.now().uptimeNanoseconds }

    func schedule(_ timer: ShellTimer, afterMs: UInt64) {
        loop.scheduleTask(in: .milliseconds(Int64(min(afterMs, 3_600_000)))) { [weak self] in self?.shell?.fire(timer) }
    }

    func serve(_ kind: ServingClass, _ work: @escaping @Sendable () -> Void) -> Bool {
        let admitted = servingPending.withLockedValue { pending -> Bool in
            guard pending[kind, default: 0] < Self.servingPendingMax[kind]! else { return false }
            pending[kind, default: 0] += 1
            return true
        }
        guard admitted else { return false }
        let pending = servingPending
        (kind == .peer ? peerServing : clientServing).async {
            defer { pending.withLockedValue { $0[kind, default: 0] -= 1 } }
            work()
        }
        return true
    }

    func background(_ work: @escaping @Sendable () -> Void, then done: @escaping () -> Void) {
        let done = Unchecked(done)
        snapshotQueue.async { [loop] in
            work()
            loop.execute { done.value() }
        }
    }
}
