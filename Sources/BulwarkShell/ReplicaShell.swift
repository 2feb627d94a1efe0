import BulwarkConsensus
import BulwarkCore
import BulwarkStorage
import Logging

/// Everything between the consensus core and the outside world, for one replica: recovery
/// from the data directory, executing delivered blocks and feeding the results back, durable
/// ordering (the WAL is fsynced before any send that depends on it; a reply leaves only once
/// its block is fsynced), checkpoint bookkeeping and WAL compaction, snapshots, state
/// transfer and verified reads (ARCHITECTURE.md §5).
///
/// It reaches the world only through `FileSystem`, `ShellNetwork`, `ShellClock` and
/// `ShellWorkers`, and is driven by one serial caller: the NIO node in production, the
/// simulator over a simulated disk and network, or a unit test. No threads, no clocks of its
/// own: the replica that runs in production is the one the simulator tortures.
public final class ReplicaShell {
    /// `cluster.json`: the configuration of epoch 0.
    public let genesis: ClusterConfig
    /// The configuration of the epoch this replica's core serves.
    public var config: ClusterConfig { core.config }
    public var epoch: UInt64 { core.epoch }
    public let id: ReplicaID
    let dataDirectory: String
    public let logger: Logger
    let key: PrivateKey
    let verifier: SignatureVerifier
    let fileSystem: any FileSystem
    let network: any ShellNetwork
    let clock: any ShellClock
    let workers: any ShellWorkers
    public internal(set) var core: Replica
    var ledger: LedgerExecution
    var journal: ConsensusJournal
    var transfer: Transfer?
    public private(set) var faulted: String?
    public private(set) var stopped = false
    /// Set when this replica stopped because a new epoch no longer lists it with its key.
    public internal(set) var retired: String?
    /// Called once when the replica retires: a process exits, and is not restarted.
    public var onRetire: ((String) -> Void)?
    /// Boundary proofs sent to peers of earlier epochs, per peer; and the newest of them.
    var epochHints = RateLimiter<ReplicaID>(perSecond: 2, burst: 4, totalPerSecond: 64)
    var boundaryProofs: [Height: CheckpointProof] = [:]
    /// Called once when the replica faults: a process exits so that its supervisor restarts
    /// it (recovery from disk is the one path back). Nil: the replica only stops.
    public var onFault: ((String) -> Void)?
    /// Receives what the shell did, for metrics, logs and reports.
    public var notify: (ShellNotice) -> Void = { _ in }
    /// Set only by fault-injection runs: rewrites what this replica's honest core sends, and
    /// what it serves in state transfer.
    public var interceptor: Interceptor?
    /// State-transfer requests per peer and proof requests per client cost this replica disk
    /// reads and hashing, and can be repeated at will: each is rate-limited.
    var transferRequests = RateLimiter<ReplicaID>(perSecond: 50, burst: 100, totalPerSecond: 400)
    var proofRequests = RateLimiter<PublicKey>(perSecond: 20, burst: 40, totalPerSecond: 2000)
    /// Fast reads waiting for this replica to execute every height it sent a COMMIT for
    /// (SPEC.md §8.6), oldest first; at most `fastReadsWaitingMax`.
    var waitingFastReads: [WaitingFastRead] = []
    static let fastReadsWaitingMax = 4096
    /// Block fetches by joining replicas (connected as clients).
    var fetchRequests = RateLimiter<PublicKey>(perSecond: 50, burst: 100, totalPerSecond: 200)
    /// One sealed block-log segment is checked for latent damage every this many milliseconds
    /// (0: never); `scrubCursor` is the next one's place in the rotation.
    let scrubIntervalMs: UInt64
    var scrubCursor = 0
    /// Set while a start-up waits for the peers' answers (`ShellStartup`).
    var probe: StartupProbe?
    /// Progress queries per peer (each costs a read of the ledger's newest block).
    var progressQueries = RateLimiter<ReplicaID>(perSecond: 10, burst: 20, totalPerSecond: 200)
    var rejoinAnnounced = false
    /// Progress reports of a rejoin that claimed a later epoch than this replica's: unproven
    /// until its ledger reaches that epoch, where `enterEpoch` checks them (SPEC.md §14.4).
    var laterEpochClaims: [ProgressReport] = []
    /// The queries (by peer, their nonces, the newest few) this process answered "awaiting
    /// genesis" while asking whether the cluster is new: a peer may have counted the answer and
    /// started the cluster meanwhile (SPEC.md §14.4).
    var answeredAsNew: [ReplicaID: [UInt64]] = [:]
    static let answeredAsNewPerPeerMax = 4
    /// The peers whose "awaiting genesis" answers this replica counted when it started a new
    /// cluster, with its query's nonce: it vouches for them when they ask (until it restarts).
    var countedAtGenesis: [ReplicaID: UInt64] = [:]
    /// When each pending client request first arrived (monotonic ns), for request latency.
    var arrivals: [RequestKey: UInt64] = [:]
    static let arrivalsTrackedMax = 1 << 16

    public struct Interceptor {
        public var rewrite: ([Action]) -> [Action]
        /// May run off the loop, where answers are read and sent.
        public var serve: @Sendable ([LedgerEntry]) -> [LedgerEntry]
        /// Milliseconds to hold a message back before sending it.
        public var delayMs: (Message) -> UInt64
        /// The answer to a peer's `progressQuery`.
        public var progress: (ProgressReport) -> ProgressReport
        public init(rewrite: @escaping ([Action]) -> [Action], serve: @escaping @Sendable ([LedgerEntry]) -> [LedgerEntry],
                    delayMs: @escaping (Message) -> UInt64, progress: @escaping (ProgressReport) -> ProgressReport = { $0 }) {
            self.rewrite = rewrite
            self.serve = serve
            self.delayMs = delayMs
            self.progress = progress
        }
    }

    /// The core's view of the deduplication table the state holds (the only one).
    struct RequestKey: Hashable {
        var client: PublicKey
        var requestID: UInt64
    }

    /// Recovers the replica from `dataDirectory`: the newest usable snapshot, the blocks after
    /// it, and the write-ahead log. Snapshots are written every `snapshotInterval` blocks
    /// (rounded up to a checkpoint height; 0 for never). Throws `NodeStartupError`.
    ///
    /// `config` is the genesis configuration (`cluster.json`); the replica serves the epoch its
    /// ledger reached, as the validator that epoch lists with `key` (which must be `id` when
    /// given), and refuses to start when there is none, saying whether it was removed or its
    /// key replaced. `startup` says what an empty data directory means and whether the
    /// replica rejoins (SPEC.md §14.4).
    public init(config: ClusterConfig, id expectedID: ReplicaID?, key: PrivateKey, dataDirectory: String,
                startup: ShellStartup,
                fileSystem: any FileSystem = PosixFileSystem(), network: any ShellNetwork, clock: any ShellClock,
                workers: any ShellWorkers, logger: Logger, snapshotInterval: Height = 1024,
                segmentBytesMax: UInt64 = BlockLog.segmentBytesDefault, scrubIntervalMs: UInt64 = 10_000,
                verifier: SignatureVerifier = SignatureVerifier()) throws {
        genesis = config
        self.dataDirectory = dataDirectory
        self.key = key
        self.verifier = verifier
        self.fileSystem = fileSystem
        self.network = network
        self.clock = clock
        self.workers = workers
        self.scrubIntervalMs = scrubIntervalMs
        var recoveryLogger = logger
        if let expectedID { recoveryLogger[metadataKey: "replica"] = "\(expectedID)" }
        let recovered = try LedgerExecution.recover(directory: dataDirectory, fileSystem: fileSystem,
                                                    genesis: config, snapshotInterval: snapshotInterval,
                                                    segmentBytesMax: segmentBytesMax, logger: recoveryLogger)
        ledger = recovered.ledger
        // The epoch the ledger reached decides the configuration, this replica's id, the key it
        // must hold and the write-ahead log its core restores from.
        let governance = ledger.state.governance
        let base = governance.epochEnds.last ?? 0
        let id = try Self.identify(key: key, expected: expectedID, genesis: config, governance: governance)
        self.id = id
        var logger = logger
        logger[metadataKey: "replica"] = "\(id)"
        self.logger = logger
        // The WAL before consensus starts: a replica that cannot tell what it signed refuses.
        journal = try ConsensusJournal(path: Self.journalPath(dataDirectory: dataDirectory, epoch: governance.epoch),
                                       fileSystem: fileSystem, cluster: config.clusterID, key: key.publicKey)
        // Rejoining sets a floor above whatever the ledger shows this replica signed.
        if startup != .rejoin, let problem = journal.olderThan(ledger.blockLog, id: id, epochBase: base) {
            throw NodeStartupError(problem)
        }
        let empty = ledger.tip.height == 0 && recovered.snapshotHeight == nil && journal.isNew
        // A rejoin is durable from its first step: until a quorum's answers set the floor, the
        // log holds one that bars everything, and a restart (with or without --rejoin) asks again.
        let rejoin = startup == .rejoin || journal.signingFloor?.isUnknown == true
        if rejoin, journal.signingFloor?.isUnknown != true {
            do { try journal.setFloor(.unknown) } catch { throw NodeStartupError("cannot write the write-ahead log: \(error)") }
        }
        Self.removeOldJournals(dataDirectory: dataDirectory, epoch: governance.epoch, fileSystem: fileSystem)
        let epochBase = try Self.tip(after: base, in: ledger)
        core = Replica(config: governance.config, id: id, key: key, verifier: verifier, executedClients: ExecutedClients(ledger.state),
                       epoch: governance.epoch, epochBase: epochBase, epochLastHeight: governance.scheduled?.lastHeight,
                       recovery: Recovery(tip: ledger.tip, checkpoint: recovered.checkpoint.flatMap { $0.height > base ? $0 : nil },
                                          wal: journal.records, executed: recovered.executed.filter { $0.header.height > base },
                                          compactedThrough: journal.compactedThrough),
                       signingFloor: journal.signingFloor)
        if rejoin {
            probe = StartupProbe(goal: .rejoin, nonce: clock.monotonicNs | 1)
        } else if startup == .probe, empty {
            probe = StartupProbe(goal: .genesis, nonce: clock.monotonicNs | 1)
        } else {
            try journal.claim()
        }
        if let latest = ledger.blockLog.latestExecutionCertificate { certify(latest) }
        logger.info("recovered", metadata: ["height": "\(ledger.tip.height)", "view": "\(core.view)",
                                            "wal": "\(journal.records.count)",
                                            "snapshot": "\(recovered.snapshotHeight.map { "\($0)" } ?? "none")"])
    }

    /// The end of the executed ledger.
    public var height: Height { ledger.tip.height }
    /// The replicated configuration after the executed ledger.
    public var governance: Governance { ledger.state.governance }
    /// The client policy in the executed state.
    public var ledgerPolicy: Policy { ledger.state.policy }
    /// The ledger on disk, for checkers and status (read only).
    public var blockLog: BlockLog { ledger.blockLog }

    /// Starts consensus (arms the core's timers, re-sends what the WAL says was sent), or
    /// first asks the peers where the cluster stands when the start-up calls for it.
    public func start() {
        guard !stopped, faulted == nil else { return }
        if probe != nil { askPeers() } else { startCore() }
        if scrubIntervalMs > 0 { clock.schedule(.scrub, afterMs: scrubIntervalMs) }
    }

    func startCore() {
        if let floor = core.rejoining { notify(.rejoining(floor)) }
        process(core.start(nowMs: clock.nowMs))
    }

    /// Whether the replica is still asking its peers before it starts.
    public var isProbing: Bool { probe != nil }

    /// Stops for good, making what was written durable. Nothing is sent or executed after.
    public func stop() {
        guard !stopped else { return }
        stopped = true
        _ = try? ledger.blockLog.sync()
        try? journal.sync()
    }

    /// Sends `frame` to replica `peer` as it is: for fault-injection drivers, which send what
    /// the honest shell never would.
    public func send(_ frame: PeerFrame, to peer: ReplicaID) {
        network.send(frame.encoded(), to: peer, afterMs: 0)
    }

    // MARK: Input

    /// Handles everything that arrived since the last call, in order. Consecutive events are
    /// stepped together and their actions carried out with one WAL fsync (group commit);
    /// other input is handled in its place in the order.
    public func handle(_ inputs: [ShellInput]) {
        var ready = Ready()
        for input in inputs {
            guard !stopped, faulted == nil else { return }
            switch input {
            case .event, .consensus, .fastRead:
                // Nothing reaches the core, or is read from a state, before it starts.
                guard probe == nil else {
                    notify(.dropped(.notStarted))
                    continue
                }
            default: break
            }
            switch input {
            case let .event(event):
                if case let .clientRequest(request) = event {
                    // A closed cluster orders nothing for a key its policy does not know
                    // (SPEC.md §19.4): strangers cannot fill blocks.
                    guard ledger.state.policyIndex.admits(request.client) else {
                        notify(.dropped(.unboundClient))
                        network.send(ClientFrame.refused(requestID: request.requestID, .unknownClient).encoded(),
                                     toClient: request.client)
                        continue
                    }
                    noteArrival(request)
                }
                ready.append(core.step(event, nowMs: clock.nowMs))
            case let .consensus(message, epoch, peer):
                if epoch == core.epoch {
                    ready.append(core.step(.message(message), nowMs: clock.nowMs))
                } else {
                    process(ready)
                    ready = Ready()
                    otherEpoch(message, epoch: epoch, from: peer)
                }
            case let .peerFrame(frame, peer):
                process(ready)
                ready = Ready()
                handle(frame, from: peer)
            case let .proveRequest(key, nonce, client):
                answerProof(key: key, nonce: nonce, to: client)
            case let .fetchBlocks(from, to, client):
                serveBlocks(from: from, to: to, toClient: client)
            case let .epochProofsRequest(from, nonce, client):
                answerEpochProofs(from: from, nonce: nonce, to: client)
            case let .fastRead(key, nonce, client):
                // Answered from the state executed so far, or held until it covers every
                // COMMIT sent (SPEC.md §8.6): no need to carry out what the batch readied first.
                fastRead(key: key, nonce: nonce, from: client)
            }
        }
        process(ready)
    }

    /// A timer the driver ran for this shell fired.
    public func fire(_ timer: ShellTimer) {
        switch timer {
        case let .core(timer): step(.timerFired(timer))
        case let .transferRetry(attempt): retryTransfer(attempt: attempt)
        case .scrub: scrubNextSegment()
        case .probeRetry: askPeers()
        }
    }

    func handle(_ frame: PeerFrame, from peer: ReplicaID) {
        switch frame {
        case let .consensus(epoch, message):
            guard probe == nil else { return notify(.dropped(.notStarted)) }
            if epoch == core.epoch { step(.message(message)) } else { otherEpoch(message, epoch: epoch, from: peer) }
        case let .fetchBlocks(from, to): serveBlocks(from: from, to: to, to: peer)
        case let .blocks(entries): receiveTransferred(entries, from: peer)
        case let .progressQuery(nonce): answerProgress(nonce: nonce, to: peer)
        case let .progress(nonce, report): receiveProgress(nonce: nonce, report, from: peer)
        }
    }

    func step(_ event: Event) {
        guard !stopped, faulted == nil else { return }
        process(core.step(event, nowMs: clock.nowMs))
    }

    /// Remembers when a request first arrived (bounded: when full, tracking starts over).
    func noteArrival(_ request: Request) {
        let key = RequestKey(client: request.client, requestID: request.requestID)
        guard arrivals[key] == nil else { return }
        if arrivals.count >= Self.arrivalsTrackedMax { arrivals.removeAll(keepingCapacity: true) }
        arrivals[key] = clock.monotonicNs
    }

    // MARK: Carrying out the core's actions

    /// Carries out what the core asked in three explicit steps: its WAL records are made
    /// durable before anything else happens (persist-before-send); then each action in order;
    /// then the replies, once the blocks they report are durable. Events the actions produce
    /// (`.executed`) are stepped afterwards.
    func process(_ ready: Ready) {
        guard !stopped, faulted == nil else { return }
        let actions = interceptor?.rewrite(ready.actions) ?? ready.actions
        var followUps: [Event] = []
        var replies: [Reply] = []
        do {
            try persist(ready.persist)
            for action in actions {
                try carryOut(action, followUps: &followUps, replies: &replies)
                guard faulted == nil, !stopped else { return }
            }
            try answer(replies)
            try answerWaitingFastReads()
        } catch {
            fault("storage failed: \(error)")
            return
        }
        for event in followUps { step(event) }
        followEpochs()
        noteRejoined()
    }

    /// Step one: the records are durable before any message that depends on them leaves.
    func persist(_ records: [WALRecord]) throws {
        guard !records.isEmpty else { return }
        try journal.append(records)
        let started = clock.monotonicNs
        try journal.sync()
        notify(.walSynced(nanoseconds: clock.monotonicNs &- started))
    }

    func carryOut(_ action: Action, followUps: inout [Event], replies: inout [Reply]) throws {
        switch action {
        case let .send(message, to):
            notify(.sent(message, epoch: core.epoch))
            network.send(PeerFrame.consensus(epoch: core.epoch, message).encoded(), to: to,
                         afterMs: interceptor?.delayMs(message) ?? 0)
        case let .broadcast(message):
            if case let .viewChange(viewChange) = message, viewChange.replica == id { notify(.sentViewChange(viewChange)) }
            notify(.sent(message, epoch: core.epoch))
            let frame = PeerFrame.consensus(epoch: core.epoch, message).encoded()
            for other in config.validators where other.id != id { network.send(frame, to: other.id, afterMs: 0) }
        case let .setTimer(timer, afterMs):
            clock.schedule(.core(timer), afterMs: afterMs)
        case let .execute(block, certificate):
            if let event = try execute(LedgerEntry(block: block, certificate: certificate)) { followUps.append(event) }
            if let event = transferOvertaken() { followUps.append(event) }
        case let .reply(reply):
            replies.append(reply)
        case let .replyAgain(client, requestID):
            // The reply the executed state holds for the request (it left before: durable).
            if let reply = ledger.state.lastReply(of: client), reply.requestID == requestID { replies.append(reply) }
        case let .refuse(client, requestID, refusal):
            network.send(ClientFrame.refused(requestID: requestID, refusal).encoded(), toClient: client)
            notify(.refused(refusal))
        case let .checkpointStable(proof):
            try checkpointStable(proof)
        case let .requestStateTransfer(height, checkpoint):
            if let event = startTransfer(to: height, checkpoint: checkpoint) { followUps.append(event) }
        case let .enteredView(view, primary):
            logger.info("entered view", metadata: ["view": "\(view)", "primary": "\(primary)", "height": "\(height)"])
            notify(.enteredView(view, primary: primary))
        case let .suspectedPrimary(view, primary, mean, allowed):
            logger.warning("primary too slow: asking for a view change", metadata: [
                "view": "\(view)", "primary": "\(primary)", "mean-turnaround-ms": "\(mean)", "allowed-ms": "\(allowed)",
            ])
            notify(.suspectedPrimary(view: view, primary: primary, meanTurnaroundMs: mean, allowedMs: allowed))
        case let .fault(reason):
            fault(reason)
        }
    }

    /// The block log is durable through `height` (one fsync for every block executed since
    /// the last): what a client is told never disappears in a crash.
    func makeDurable(through height: Height) throws {
        if ledger.blockLog.durableHeight < height {
            let started = clock.monotonicNs
            try ledger.blockLog.sync()
            notify(.blockLogSynced(nanoseconds: clock.monotonicNs &- started))
        }
        precondition(ledger.blockLog.durableHeight >= height, "an answer about block \(height) would leave before the block is durable")
    }

    /// Step three: replies leave only once the blocks they report are durable.
    func answer(_ replies: [Reply]) throws {
        guard let highest = replies.map(\.height).max() else { return }
        try makeDurable(through: highest)
        for reply in replies {
            // The client's connection authenticates the reply (see `HandshakeMessage`); the view
            // tells the client where to send next (`RequestRouting`).
            let answer = ClientReply(requestID: reply.requestID, height: reply.height, view: core.view,
                                     result: reply.result)
            network.send(ClientFrame.reply(answer).encoded(), toClient: reply.client)
            let arrived = arrivals.removeValue(forKey: RequestKey(client: reply.client, requestID: reply.requestID))
            notify(.replied(latencyNanoseconds: arrived.map { clock.monotonicNs &- $0 }))
        }
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

    // MARK: Execution and checkpoints

    /// Appends a committed block and executes it; the `.executed` event to feed back.
    func execute(_ entry: LedgerEntry) throws -> Event? {
        let height = entry.block.height
        if height <= ledger.blockLog.height {
            // Already here through state transfer: it must be the same block. The core still
            // learns that it is executed, or it would wait for it forever (no replies, no
            // checkpoints) once it delivers later heights itself.
            guard ledger.blockLog.blockHash(at: height) == entry.block.hash else {
                fault("consensus delivered a block at height \(height) other than the one in the ledger")
                return nil
            }
            notify(.deliveredAfterTransfer(height))
            return .executed(height: height, stateRoot: ledger.checkpointRoot(at: height),
                             replies: ledger.repliesRecorded(for: entry.block), policy: ledger.state.policyIndex)
        }
        // Paired assertions: the block is the next one and links to the tip right before it is
        // written, and the log holds exactly it right after.
        precondition(height == ledger.blockLog.height + 1 && entry.block.header.prevBlockHash == ledger.tip.blockHash,
                     "consensus delivered block \(height) out of order onto a ledger at \(ledger.blockLog.height)")
        try ledger.blockLog.append(entry)
        precondition(ledger.blockLog.height == height && ledger.blockLog.blockHash(at: height) == entry.block.hash,
                     "the block log does not hold block \(height) right after appending it")
        let (outcomes, checkpoint) = try ledger.apply(entry)
        precondition(ledger.tip.height == height && ledger.tip.blockHash == entry.block.hash,
                     "executing block \(height) left the state at \(ledger.tip.height)")
        try ledger.history.flush()
        let denied = outcomes.count { if case .executed(.permissionDenied) = $0 { true } else { false } }
        notify(.executed(height: height, requests: entry.block.requests.count, denied: denied,
                         stateRoot: checkpoint?.stateRoot))
        return .executed(height: height, stateRoot: checkpoint?.stateRoot,
                         replies: Reply.replies(to: entry.block, outcomes: outcomes), policy: ledger.state.policyIndex)
    }

    /// A stable checkpoint: store its execution certificate in the ledger, make it the state
    /// proofs are read from, and compact the WAL below it.
    func checkpointStable(_ proof: CheckpointProof) throws {
        // Stable checkpoints only move up, so the log's certificates are in height order and
        // one at or below the newest stored is not needed (checked in O(1), not by a scan of
        // every certificate the ledger holds).
        if proof.height > ledger.blockLog.latestExecutionCertificate?.height ?? 0,
           ledger.blockLog.blockHash(at: proof.height) == proof.certificate.blockHash {
            try ledger.blockLog.append(proof.certificate)
            try ledger.blockLog.sync()
        }
        certify(proof.certificate)
        try journal.compact(stable: proof.height)
    }

    /// Makes the executed checkpoint that `certificate` certifies the one proofs are read
    /// from, and writes its snapshot if one is due.
    func certify(_ certificate: ExecutionCertificate) {
        writeSnapshot(certified: certificate)
        ledger.certify(certificate)
    }
}
