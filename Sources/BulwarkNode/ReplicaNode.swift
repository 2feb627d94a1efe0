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

/// Why a replica cannot start, in one sentence.
public struct NodeStartupError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A replica process (DESIGN.md §5): the consensus core driven by one serial event loop, the
/// transport on I/O threads (which also pre-verify signatures, so checks run on every core),
/// the block log, the write-ahead log and the state machine. Persist-before-send: the WAL is
/// fsynced before any message that depends on it leaves. Replies leave only once their block
/// is fsynced (group commit: one fsync per burst of executed blocks).
public final class ReplicaNode: @unchecked Sendable {
    // Everything mutable below is touched only on `loop`.
    public let config: ClusterConfig
    public let id: ReplicaID
    let key: PrivateKey
    public let logger: Logger
    let verifier = SignatureVerifier()
    let ioGroup: MultiThreadedEventLoopGroup
    let coreGroup: MultiThreadedEventLoopGroup
    let loop: any EventLoop
    var core: Replica
    var state: KeyValueState
    /// Every version of every key, in a file beside the block log (derived from it).
    let history: FileKeyHistory
    var ledgerTip: ChainTip
    let blockLog: BlockLog
    let wal: WriteAheadLog
    var walRecords: [WALRecord]
    var transport: Transport!
    var transfer: Transfer?
    var statusChannel: (any Channel)?
    var stopped = false
    /// Everything from the network waiting for the core loop (DESIGN.md §5: a bounded inbox
    /// with back-pressure). Events that arrive while the loop is busy are stepped together and
    /// share one WAL fsync (group commit for consensus records). Past half its bounds the
    /// transport stops reading until the loop has drained it; at its bounds input is dropped
    /// and counted (consensus retransmits, clients retry).
    let inbox = NIOLockedValueBox(Inbox())
    static let inboxItemsMax = 8192
    static let inboxBytesMax = 64 << 20

    struct Inbox {
        var items: [Input] = []
        var bytes = 0
        var scheduled = false
        var paused = false
    }

    /// What arrives from the network for the core loop.
    enum Input {
        case event(Event)
        case peerFrame(PeerFrame, from: ReplicaID)
        case proveRequest(key: [UInt8], nonce: UInt64, client: PublicKey)
    }

    /// State-transfer requests per peer and proof requests per client cost this replica disk
    /// reads and hashing, and can be repeated at will: each is rate-limited (on `loop`).
    var transferRequests = RateLimiter<ReplicaID>(perSecond: 50, burst: 100, totalPerSecond: 400)
    var proofRequests = RateLimiter<PublicKey>(perSecond: 20, burst: 40, totalPerSecond: 2000)
    /// Descriptors kept free of connections for storage (segments, WAL, key history, snapshots)
    /// and the runtime: running out of sockets must never become a storage fault.
    public static let descriptorsReserved = 256
    public private(set) var faulted: String?
    /// Called once, on `loop`, when the replica faults: a process exits so that its supervisor
    /// restarts it (recovery from disk is the one path back). Nil: the replica only stops.
    public var onFault: (@Sendable (String) -> Void)?
    /// Set only by fault-injection runs (`bulwark-byzantine`): rewrites what this replica's
    /// honest core sends, and what it serves in state transfer. Touched only on `loop`.
    public var interceptor: Interceptor?

    public struct Interceptor {
        public var rewrite: ([Action]) -> [Action]
        /// Runs off the core loop, where answers are read and sent.
        public var serve: @Sendable ([LedgerEntry]) -> [LedgerEntry]
        /// Milliseconds to hold a message back before sending it.
        public var delayMs: (Message) -> UInt64
        public init(rewrite: @escaping ([Action]) -> [Action], serve: @escaping @Sendable ([LedgerEntry]) -> [LedgerEntry],
                    delayMs: @escaping (Message) -> UInt64) {
            self.rewrite = rewrite
            self.serve = serve
            self.delayMs = delayMs
        }
    }
    let metrics: NodeMetrics
    /// When each pending client request first arrived, for the request-latency histogram.
    var arrivals: [RequestKey: NIODeadline] = [:]
    static let arrivalsTrackedMax = 1 << 16

    /// The state at executed checkpoints not yet certified, and the newest certified one with
    /// its execution certificate: what `bulwark prove` reads.
    var checkpointStates: [Height: ProvableState] = [:]
    var certifiedState: (state: ProvableState, certificate: ExecutionCertificate)?
    var snapshots: StateSnapshots
    /// Encodes and writes snapshots off the core loop, one at a time.
    let snapshotQueue = DispatchQueue(label: "bulwark.snapshots")
    /// Reads and sends state-transfer answers and proofs off the core loop (`offLoop`).
    let servingQueue = DispatchQueue(label: "bulwark.serving")
    let servingPending = NIOLockedValueBox(0)
    static let servingPendingMax = 16

    struct RequestKey: Hashable {
        var client: PublicKey
        var requestID: UInt64
    }


    struct Transfer {
        var target: Height
        var checkpoint: CheckpointProof?
        var attempt: Int
        var executed: [ExecutedCheckpoint] = []
    }

    /// Snapshots of the state are written every `snapshotInterval` blocks (rounded up to a
    /// checkpoint height; 0 for never), so a restart replays only the blocks after the newest.
    public init(config: ClusterConfig, id: ReplicaID, key: PrivateKey, dataDirectory: String, logger: Logger,
                snapshotInterval: Height = 1024) throws {
        guard config.validator(id)?.publicKey == key.publicKey else {
            throw NodeStartupError("the key file's public key is not validator \(id)'s in the cluster configuration")
        }
        self.config = config
        self.id = id
        self.key = key
        var logger = logger
        logger[metadataKey: "replica"] = "\(id)"
        self.logger = logger
        metrics = NodeMetrics(replica: id, peers: config.validators.map(\.id).filter { $0 != id })
        do {
            try FileManager.default.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true)
            blockLog = try BlockLog(directory: dataDirectory + "/blocks")
            if let damage = blockLog.damage {
                logger.error("block log damaged; serving up to the block before it and repairing from peers",
                             metadata: ["height": "\(damage.height)", "reason": "\(damage.reason)"])
                try blockLog.truncateDamage()
            }
            wal = try WriteAheadLog(path: dataDirectory + "/consensus.wal")
            history = try FileKeyHistory(path: dataDirectory + "/key-history.log", valueBytesMax: config.parameters.valueBytesMax)
        } catch {
            throw NodeStartupError("cannot open the data directory \(dataDirectory): \(error)")
        }
        do { walRecords = try wal.records.map { try WALRecord(decoding: $0) } } catch {
            throw NodeStartupError("the write-ahead log in \(dataDirectory) is unreadable (\(error)); refusing to start rather than risk signing twice")
        }
        // Rebuild the state from the newest usable snapshot and the blocks after it (or the
        // whole ledger); remember what a checkpoint proof needs.
        let snapshotDirectory = dataDirectory + "/snapshots"
        var tip = ChainTip.genesis
        var executed: [ExecutedCheckpoint] = []
        var proof: CheckpointProof?
        let latest = blockLog.latestExecutionCertificate
        let restored = StateSnapshots.load(directory: snapshotDirectory, blockLog: blockLog, limits: config.parameters,
                                           history: history, logger: logger)
        do {
            // Entries past the restored state's are rewritten by the replay below.
            try history.truncate(to: restored?.state.historyEnd ?? 0)
        } catch {
            throw NodeStartupError("cannot trim the key history file in \(dataDirectory): \(error)")
        }
        state = KeyValueState(limits: config.parameters, history: history)
        var replayedRequests = 0
        if let restored {
            state = restored.state
            tip = restored.tip
            checkpointStates[tip.height] = state.provable
            if restored.certificate == latest {
                proof = CheckpointProof(certificate: restored.certificate, header: restored.entry.block.header,
                                        historyBefore: restored.tipBefore.history)
            }
        }
        for height in stride(from: tip.height + 1, through: blockLog.height, by: 1) {
            let entry = try blockLog.entry(at: height)
            let before = tip
            tip = tip.appending(entry.block.header, hash: entry.block.hash)
            do { _ = try state.execute(entry.block) } catch {
                throw NodeStartupError("cannot replay block \(height): \(error)")
            }
            replayedRequests += entry.block.requests.count
            if let latest, latest.height == height {
                proof = CheckpointProof(certificate: latest, header: entry.block.header, historyBefore: before.history)
                checkpointStates[height] = state.provable
            }
            if height % config.parameters.checkpointInterval == 0, height > (latest?.height ?? 0) {
                executed.append(ExecutedCheckpoint(header: entry.block.header, historyBefore: before.history,
                                                   stateRoot: state.stateRoot))
                checkpointStates[height] = state.provable
            }
        }
        do { try history.flush() } catch {
            throw NodeStartupError("cannot write the key history file in \(dataDirectory): \(error)")
        }
        ledgerTip = tip
        snapshots = StateSnapshots(directory: snapshotDirectory, requested: snapshotInterval,
                                   checkpointInterval: config.parameters.checkpointInterval,
                                   lastBytes: restored?.bytes ?? 0, requestsSince: replayedRequests)
        core = Replica(config: config, id: id, key: key, verifier: verifier,
                       recovery: Recovery(tip: tip, checkpoint: proof, wal: walRecords, clients: state.clientReplies,
                                          executed: executed))
        ioGroup = MultiThreadedEventLoopGroup(numberOfThreads: max(1, System.coreCount))
        coreGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        loop = coreGroup.next()
        if let latest { certify(latest) }
        logger.info("recovered", metadata: ["height": "\(tip.height)", "view": "\(core.view)", "wal": "\(walRecords.count)",
                                            "snapshot": "\(restored.map { "\($0.entry.block.height)" } ?? "none")"])
    }

    /// Binds the replica and client addresses and starts consensus.
    public func start() async throws {
        let validator = config.validator(id)!
        var settings = Transport.Settings(frameBytesMax: config.parameters.frameBytesMax)
        settings.inboundConnectionsMax = Self.inboundConnectionsMax()
        settings.trustedSources = Set(config.validators.map(\.replicaAddress.host))
        transport = Transport(group: ioGroup, config: config, role: .replica(id), key: key, settings: settings,
                              logger: logger, onFrame: { [self] role, bytes in received(role, bytes) })
        for address in [validator.replicaAddress, validator.clientAddress] {
            do { _ = try await transport.listen(host: address.host, port: Int(address.port)) } catch {
                throw NodeStartupError("cannot listen on \(address): \(error)")
            }
        }
        do { try await startStatusServer() } catch {
            throw NodeStartupError("cannot listen on \(validator.httpAddress): \(error)")
        }
        try await loop.submit { [self] in process(core.start(nowMs: Self.nowMs())) }.get()
        logger.info("serving", metadata: ["replicas": "\(validator.replicaAddress)", "clients": "\(validator.clientAddress)"])
    }

    public func stop() async {
        _ = try? await loop.submit { [self] in
            stopped = true
            _ = try? blockLog.sync()
            try? wal.sync()
        }.get()
        // Let a snapshot being written finish (an interrupted one is never half visible).
        await withCheckedContinuation { done in snapshotQueue.async { done.resume() } }
        await transport?.shutdown()
        try? await statusChannel?.close()
        try? await ioGroup.shutdownGracefully()
        try? await coreGroup.shutdownGracefully()
    }

    static func nowMs() -> UInt64 { UInt64(Date().timeIntervalSince1970 * 1000) }

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
        switch role {
        case let .replica(peer):
            guard let frame = try? PeerFrame(decoding: bytes) else {
                logger.debug("undecodable frame", metadata: ["peer": "\(peer)"])
                metrics.drop(.undecodablePeerFrame)
                return
            }
            if case let .consensus(message) = frame {
                // The sender inside a signed message must be the authenticated peer.
                if let sender = message.sender, sender != peer {
                    metrics.drop(.senderMismatch)
                    return
                }
                message.preverify(config: config, verifier: verifier)
                enqueue(.event(.message(message)), bytes: bytes.count)
            } else {
                enqueue(.peerFrame(frame, from: peer), bytes: bytes.count)
            }
        case let .client(client):
            let request: Request
            switch try? ClientFrame(decoding: bytes) {
            case let .request(r)?: request = r
            case let .proveRequest(key, nonce)?:
                enqueue(.proveRequest(key: key, nonce: nonce, client: client), bytes: bytes.count)
                return
            default:
                metrics.drop(.undecodableClientFrame)
                transport.send(ClientFrame.refused(requestID: 0, .malformed).encoded(), toClient: client)
                return
            }
            guard verifier.isValid(request.signature, by: request.client, for: request.signedBytes(cluster: config.clusterID)) else {
                metrics.drop(.badClientSignature)
                transport.send(ClientFrame.refused(requestID: request.requestID, .badSignature).encoded(), toClient: client)
                return
            }
            metrics.clientRequests.increment()
            enqueue(.event(.clientRequest(request)), bytes: bytes.count)
        }
    }

    /// Queues `input` for the core loop within the inbox's bounds; past half of them, asks the
    /// transport to stop reading until the loop drained the inbox.
    func enqueue(_ input: Input, bytes: Int) {
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

    /// Takes everything queued: consecutive events are stepped together and their actions
    /// carried out with one WAL fsync; other input is handled in its place in the order.
    func drain() {
        let (items, paused) = inbox.withLockedValue { inbox -> ([Input], Bool) in
            inbox.scheduled = false
            defer {
                inbox.items.removeAll(keepingCapacity: true)
                inbox.bytes = 0
                inbox.paused = false
            }
            return (inbox.items, inbox.paused)
        }
        defer { if paused { transport.resumeReading() } }
        guard !stopped, faulted == nil else { return }
        metrics.inboxDepth.record(items.count)
        var actions: [Action] = []
        let now = NIODeadline.now()
        for item in items {
            switch item {
            case let .event(event):
                if case let .clientRequest(request) = event { noteArrival(request, at: now) }
                actions += core.step(event, nowMs: Self.nowMs())
            case let .peerFrame(frame, peer):
                process(actions)
                actions = []
                handle(frame, from: peer)
            case let .proveRequest(key, nonce, client):
                answerProof(key: key, nonce: nonce, to: client)
            }
            guard faulted == nil else { return }
        }
        process(actions)
    }

    // MARK: The serial owner of the core (on `loop`)

    func handle(_ frame: PeerFrame, from peer: ReplicaID) {
        switch frame {
        case let .consensus(message):
            step(.message(message))
        case let .fetchBlocks(from, to):
            guard transferRequests.allow(peer, nowMs: Self.nowMs()) else {
                metrics.drop(.rateLimited)
                return
            }
            guard let range = PeerFrame.transferRange(from: from, to: to, ledgerHeight: blockLog.height) else {
                metrics.drop(.badTransferRequest)
                return
            }
            serve(range.map { blockLog.location(of: $0) }, to: peer)
        case let .blocks(entries):
            receiveTransferred(entries, from: peer)
        }
    }

    /// Reads, encodes and sends blocks a peer asked for on `servingQueue`, off the core loop:
    /// only finding where they are happens here.
    func serve(_ locations: [BlockLogReader.Location], to peer: ReplicaID) {
        let transport = self.transport!
        let serve = interceptor?.serve
        offLoop(dropping: { metrics.drop(.rateLimited) }) {
            // A block that fails its checks (damage being repaired) ends the answer there.
            var entries: [LedgerEntry] = []
            for location in locations {
                // The node's block log is on the POSIX file system, which holds no state.
                guard let entry = try? BlockLogReader.read(location, fileSystem: PosixFileSystem()) else { break }
                entries.append(entry)
            }
            transport.send(PeerFrame.blocks(serve?(entries) ?? entries).encoded(), to: peer)
        }
    }

    /// Runs `work` on `servingQueue` unless `servingPendingMax` pieces already wait there, in
    /// which case `dropped` runs instead (the peer or client asks again).
    func offLoop(dropping dropped: () -> Void, _ work: @escaping @Sendable () -> Void) {
        let admitted = servingPending.withLockedValue { pending -> Bool in
            guard pending < Self.servingPendingMax else { return false }
            pending += 1
            return true
        }
        guard admitted else { return dropped() }
        let pending = servingPending
        servingQueue.async {
            defer { pending.withLockedValue { $0 -= 1 } }
            work()
        }
    }

    func step(_ event: Event) {
        guard !stopped, faulted == nil else { return }
        process(core.step(event, nowMs: Self.nowMs()))
    }

    func process(_ actions: [Action]) {
        let actions = interceptor?.rewrite(actions) ?? actions
        var followUps: [Event] = []
        do {
            // Persist-before-send: every record of these steps is durable before anything is sent.
            let records = actions.compactMap { if case let .persist(r) = $0 { return r } else { return nil } }
            if !records.isEmpty {
                try wal.append(contentsOf: records.map { $0.encoded() })
                try timed(metrics.walFsyncTime) { try wal.sync() }
                metrics.walFsyncs.increment()
                walRecords.append(contentsOf: records)
            }
            for action in actions {
                switch action {
                case .persist: break
                case let .send(message, to):
                    let frame = PeerFrame.consensus(message).encoded()
                    if let delay = interceptor?.delayMs(message), delay > 0 {
                        loop.scheduleTask(in: .milliseconds(Int64(delay))) { [self] in transport.send(frame, to: to) }
                    } else {
                        transport.send(frame, to: to)
                    }
                case let .broadcast(message):
                    let frame = PeerFrame.consensus(message).encoded()
                    for other in config.validators where other.id != id { transport.send(frame, to: other.id) }
                case let .setTimer(timer, afterMs):
                    loop.scheduleTask(in: .milliseconds(Int64(afterMs))) { [self] in step(.timerFired(timer)) }
                case let .execute(block, certificate):
                    if let event = try execute(LedgerEntry(block: block, certificate: certificate)) { followUps.append(event) }
                case let .reply(reply):
                    // Answer only once the block is durable.
                    if blockLog.durableHeight < reply.height { try timed(metrics.blockFsyncTime) { try blockLog.sync() } }
                    // The client's connection authenticates the reply (see `HandshakeMessage`).
                    let answer = ClientReply(requestID: reply.requestID, height: reply.height, result: reply.result)
                    transport.send(ClientFrame.reply(answer).encoded(), toClient: reply.client)
                    metrics.repliesSent.increment()
                    if let arrived = arrivals.removeValue(forKey: RequestKey(client: reply.client, requestID: reply.requestID)) {
                        metrics.requestLatency.recordNanoseconds((NIODeadline.now() - arrived).nanoseconds)
                    }
                case let .refuse(client, requestID, refusal):
                    transport.send(ClientFrame.refused(requestID: requestID, refusal).encoded(), toClient: client)
                case let .checkpointStable(proof):
                    try checkpointStable(proof)
                case let .requestStateTransfer(height, checkpoint):
                    startTransfer(to: height, checkpoint: checkpoint)
                case let .enteredView(view, primary):
                    logger.info("entered view", metadata: ["view": "\(view)", "primary": "\(primary)", "height": "\(ledgerTip.height)"])
                    if view > 0 { metrics.viewChanges.increment() }
                case let .suspectedPrimary(view, primary, mean, allowed):
                    logger.warning("primary too slow: asking for a view change", metadata: [
                        "view": "\(view)", "primary": "\(primary)", "mean-turnaround-ms": "\(mean)", "allowed-ms": "\(allowed)",
                    ])
                    metrics.slowPrimarySuspicions.increment()
                case let .fault(reason):
                    fault(reason)
                    return
                }
            }
        } catch {
            fault("storage failed: \(error)")
            return
        }
        updateGauges()
        for event in followUps { step(event) }
    }

    func updateGauges() {
        metrics.committedHeight.record(ledgerTip.height)
        metrics.view.record(core.view)
        metrics.stableCheckpoint.record(core.lowWatermark)
        metrics.changingView.record(core.isChangingView ? 1 : 0)
        for (peer, gauge) in metrics.peerHeight {
            let height = core.peerHeights[peer] ?? 0
            gauge.record(height)
            metrics.peerLag[peer]?.record(ledgerTip.height > height ? ledgerTip.height - height : 0)
        }
        for link in transport?.links ?? [] {
            metrics.peerConnected[link.replica]?.record(link.state == .up ? 1 : 0)
            metrics.peerQueuedFrames[link.replica]?.record(link.queuedFrames)
        }
    }

    @discardableResult
    func timed<T>(_ timer: Metrics.Timer, _ body: () throws -> T) rethrows -> T {
        let start = NIODeadline.now()
        defer { timer.recordNanoseconds((NIODeadline.now() - start).nanoseconds) }
        return try body()
    }

    /// Remembers when a request first arrived (bounded: when full, tracking starts over).
    func noteArrival(_ request: Request, at now: NIODeadline) {
        let key = RequestKey(client: request.client, requestID: request.requestID)
        guard arrivals[key] == nil else { return }
        if arrivals.count >= Self.arrivalsTrackedMax { arrivals.removeAll(keepingCapacity: true) }
        arrivals[key] = now
    }

    /// Stops the replica for good: it sends, executes and serves nothing more, and a process
    /// exits (`onFault`) so that a supervisor restarts it from disk. A transient resource
    /// error (a full disk, descriptors run out) thus never leaves a zombie replica that looks
    /// alive but is out of the cluster.
    func fault(_ reason: String) {
        guard faulted == nil else { return }
        faulted = reason
        logger.critical("stopping: \(reason)")
        onFault?(reason)
    }

    /// Appends a committed block and executes it; the `.executed` event to feed back.
    func execute(_ entry: LedgerEntry) throws -> Event? {
        let height = entry.block.height
        if height <= blockLog.height {
            // Already here through state transfer: it must be the same block.
            guard blockLog.blockHash(at: height) == entry.block.hash else {
                fault("consensus delivered a block at height \(height) other than the one in the ledger")
                return nil
            }
            return nil
        }
        try blockLog.append(entry)
        let before = ledgerTip
        ledgerTip = ledgerTip.appending(entry.block.header, hash: entry.block.hash)
        let outcomes = try state.execute(entry.block)
        try history.flush()
        // Only checkpoint heights need the settled map: for proofs, and for the root signed.
        let isCheckpoint = height % config.parameters.checkpointInterval == 0
        if isCheckpoint { checkpointStates[height] = state.provable }
        noteExecutedForSnapshots(requests: entry.block.requests.count, tipBefore: before)
        metrics.blocksExecuted.increment()
        metrics.requestsExecuted.increment(by: entry.block.requests.count)
        var replies: [Reply] = []
        for (request, outcome) in zip(entry.block.requests, outcomes) {
            switch outcome {
            case let .executed(result), let .duplicate(result):
                replies.append(Reply(client: request.client, requestID: request.requestID, height: height, result: result.encoded()))
            case .stale: break
            }
        }
        return .executed(height: height, stateRoot: isCheckpoint ? state.stateRoot : nil, replies: replies)
    }

    func checkpointStable(_ proof: CheckpointProof) throws {
        // Stable checkpoints only move up, so the log's certificates are in height order and
        // one at or below the newest stored is not needed (checked in O(1), not by a scan of
        // every certificate the ledger holds).
        if proof.height > blockLog.latestExecutionCertificate?.height ?? 0,
           blockLog.blockHash(at: proof.height) == proof.certificate.blockHash {
            try blockLog.append(proof.certificate)
            try blockLog.sync()
        }
        certify(proof.certificate)
        // Records at or below the stable checkpoint are never needed again; of view-change
        // and new-view records only the newest of each matters.
        let lastViewChange = walRecords.lastIndex { if case .sent(.viewChange) = $0 { return true } else { return false } }
        let lastNewView = walRecords.lastIndex { record in
            switch record {
            case .sent(.newView), .acceptedNewView: return true
            default: return false
            }
        }
        // `wal.records` holds the encoded form of each of `walRecords`, in the same order.
        let keep = walRecords.indices.filter { index in
            if let height = walRecords[index].height { return height > proof.height }
            return index == lastViewChange || index == lastNewView
        }
        if keep.count < walRecords.count {
            try wal.rewrite(keeping: keep.map { wal.records[$0] })
            walRecords = keep.map { walRecords[$0] }
        }
    }

    // MARK: Verified reads

    /// Makes the executed checkpoint that `certificate` certifies the one proofs are read from.
    func certify(_ certificate: ExecutionCertificate) {
        writeSnapshot(certified: certificate)
        guard certificate.height > certifiedState?.state.height ?? 0 else { return }
        if let provable = checkpointStates[certificate.height], provable.stateRoot == certificate.stateRoot {
            certifiedState = (provable, certificate)
        }
        checkpointStates = checkpointStates.filter { $0.key > certificate.height }
    }

    /// Answers a verified read. Only taking the key's place in the state happens on the loop;
    /// the proof is built and sent on `servingQueue`, like state-transfer answers, within the
    /// same bound on waiting answers.
    func answerProof(key: [UInt8], nonce: UInt64, to client: PublicKey) {
        let transport = self.transport!, id = self.id
        guard proofRequests.allow(client, nowMs: Self.nowMs()) else {
            metrics.drop(.rateLimited)
            let reason = "replica \(id) is rate-limiting proof requests from this client; try again shortly"
            transport.send(ClientFrame.proofUnavailable(nonce: nonce, reason: reason).encoded(), toClient: client)
            return
        }
        guard let (provable, certificate) = certifiedState else {
            let reason = "replica \(id) has no certified checkpoint yet (the first is at height \(config.parameters.checkpointInterval))"
            transport.send(ClientFrame.proofUnavailable(nonce: nonce, reason: reason).encoded(), toClient: client)
            return
        }
        let source = state.proofSource(for: key)
        offLoop(dropping: { metrics.drop(.rateLimited) }) { [logger] in
            let frame: ClientFrame
            do {
                frame = .proof(nonce: nonce, KeyProofBundle(proof: try source.prove(at: provable), certificate: certificate))
            } catch {
                logger.error("cannot read a key's history for a proof", metadata: ["error": "\(error)"])
                frame = .proofUnavailable(nonce: nonce, reason: "replica \(id) cannot read its key history: \(error)")
            }
            transport.send(frame.encoded(), toClient: client)
        }
    }

    // MARK: State transfer

    func startTransfer(to height: Height, checkpoint: CheckpointProof?) {
        if let transfer, transfer.target >= height { return }
        if transfer == nil {
            metrics.stateTransfers.increment()
            logger.info("state transfer started", metadata: ["height": "\(ledgerTip.height)", "target": "\(height)"])
        }
        transfer = Transfer(target: height, checkpoint: checkpoint, attempt: transfer?.attempt ?? 0)
        askForBlocks()
    }

    func askForBlocks() {
        guard let transfer else { return }
        let others = config.validators.map(\.id).filter { $0 != id }
        let peer = others[(Int(id) + transfer.attempt) % others.count]
        transport.send(PeerFrame.fetchBlocks(from: ledgerTip.height + 1, to: transfer.target).encoded(), to: peer)
        let attempt = transfer.attempt
        loop.scheduleTask(in: .seconds(1)) { [self] in
            // No progress from that peer: ask the next one.
            guard var current = self.transfer, current.attempt == attempt else { return }
            current.attempt += 1
            self.transfer = current
            askForBlocks()
        }
    }

    /// Blocks from a peer: every one is checked here (link, certificate, client signatures);
    /// the first that fails ends this answer, and the next peer is asked.
    func receiveTransferred(_ entries: [LedgerEntry], from peer: ReplicaID) {
        guard var current = transfer else { return }
        do {
            for entry in entries where entry.block.height == ledgerTip.height + 1 {
                let next = try ledgerTip.verifyNext(entry, config: config, verifier: verifier)
                let before = ledgerTip
                try blockLog.append(entry)
                ledgerTip = next
                _ = try state.execute(entry.block)
                metrics.transferredBlocks.increment()
                noteExecutedForSnapshots(requests: entry.block.requests.count, tipBefore: before)
                if entry.block.height % config.parameters.checkpointInterval == 0 {
                    checkpointStates[entry.block.height] = state.provable
                    current.executed.append(ExecutedCheckpoint(header: entry.block.header, historyBefore: before.history,
                                                               stateRoot: state.stateRoot))
                }
            }
            try blockLog.sync()
            try history.flush()
        } catch let error as LedgerError {
            logger.warning("peer sent an invalid block in state transfer", metadata: ["peer": "\(peer)", "error": "\(error)"])
            metrics.drop(.badTransferredBlock)
            current.attempt += 1
            transfer = current
            askForBlocks()
            return
        } catch {
            fault("storage failed during state transfer: \(error)")
            return
        }
        if ledgerTip.height >= current.target {
            transfer = nil
            let checkpoint = current.checkpoint.flatMap { $0.height <= ledgerTip.height ? $0 : nil }
            if let checkpoint { certify(checkpoint.certificate) }
            logger.info("state transfer done", metadata: ["height": "\(ledgerTip.height)"])
            step(.stateTransferred(tip: ledgerTip, checkpoint: checkpoint, clients: state.clientReplies, executed: current.executed))
        } else {
            transfer = current
            transport.send(PeerFrame.fetchBlocks(from: ledgerTip.height + 1, to: current.target).encoded(), to: peer)
        }
    }
}
