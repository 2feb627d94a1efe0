import BulwarkCore

/// One replica's PBFT state machine (Castro & Liskov, OSDI 1999 / TOCS 2002), signature
/// variant. A value type driven by `step(_:nowMs:)`: no sockets, files, clocks, randomness or
/// threads. The node runtime, the simulator and the unit tests are shells around it.
///
/// Iteration over hash tables never decides anything observable: wherever order matters the
/// core walks height ranges or sorted keys.
public struct Replica: Sendable {
    /// The configuration of `epoch`: its validators, quorum and parameters.
    public let config: ClusterConfig
    /// The configuration epoch this core orders blocks in (SPEC.md §18). A core serves one
    /// epoch; the shell starts a new core at the boundary.
    public let epoch: UInt64
    /// The ledger position at which this epoch starts: after the previous epoch's last block
    /// (genesis for epoch 0). It plays the part of genesis for this epoch's view changes: a
    /// replica without a stable checkpoint of this epoch stands at the base.
    public let epochBase: ChainTip
    /// The last height of this epoch, once the ledger scheduled a change: nothing above it is
    /// proposed, prepared or committed in this epoch.
    public internal(set) var epochLastHeight: Height?
    /// Since when this replica waits for the blocks up to `epochLastHeight` (reset by
    /// progress): a primary that does not drive the epoch to its end is replaced like one
    /// that sits on a request.
    var epochEndWaitSinceMs: UInt64?
    public let id: ReplicaID
    let key: PrivateKey
    let verifier: SignatureVerifier

    var cluster: ClusterID { config.clusterID }
    var parameters: ProtocolParameters { config.parameters }

    // MARK: View

    /// The current view. While `isChangingView`, this is the view being changed to.
    public internal(set) var view: View = 0
    /// True between sending VIEW-CHANGE for `view` and accepting its NEW-VIEW.
    public internal(set) var isChangingView = false
    /// View changes since the last executed block; the new-view timeout doubles with each.
    var consecutiveViewChanges = 0
    /// The NEW-VIEW that started the current view (nil in view 0).
    var newViewMessage: NewView?
    var ownViewChange: ViewChange?
    /// The latest valid VIEW-CHANGE from each replica for a view ≥ `view` (one per sender:
    /// bounded memory under a flood of future views).
    var viewChanges: [ReplicaID: ViewChange] = [:]

    // MARK: Ledger position

    /// The end of the chain of delivered (committed, in-order) blocks.
    public internal(set) var chain: ChainTip
    /// The last block the shell reported executed.
    public internal(set) var lastExecuted: Height
    /// The newest stable checkpoint (the low watermark); nil at genesis.
    public internal(set) var stable: CheckpointProof?
    public var lowWatermark: Height { stable?.height ?? epochBase.height }
    /// A window above the stable checkpoint, and above what this replica executed (so a change
    /// the ledger schedules is known before any height past its boundary could be accepted:
    /// `Governance.lastHeight`), and never past the epoch's last height.
    public var highWatermark: Height {
        var high = min(lowWatermark, lastExecuted) + parameters.watermarkWindow
        if let last = epochLastHeight { high = min(high, last) }
        return max(high, lowWatermark)
    }
    /// Delivered blocks above the stable checkpoint, for checkpoint proofs and for checking
    /// re-proposals after a view change.
    var delivered: [Height: DeliveredBlock] = [:]
    /// Height of a requested state transfer not yet finished.
    var stateTransferTarget: Height?
    /// The commit certificate of the newest delivered block, re-announced when idle.
    var lastCommitProof: CommitProof?
    /// For each other replica, the highest height it signed a COMMIT or a CHECKPOINT for, among
    /// the valid ones this replica received: how far along the peer is, for monitoring only.
    public private(set) var peerHeights: [ReplicaID: Height] = [:]

    // MARK: Current view's log

    var slots: [Height: Slot] = [:]
    /// Pre-prepares whose predecessor has not been accepted yet (at most one per height
    /// inside the window).
    var waitingPrePrepares: [Height: PrePrepare] = [:]
    /// For each height above the stable checkpoint, the prepared certificate from the highest
    /// view: carried into VIEW-CHANGE messages.
    var preparedCertificates: [Height: PreparedCertificate] = [:]
    /// The last block executed here and when: a request waiting for the primary counts from
    /// then at the earliest (`judgeTurnaround`).
    var lastExecutionMs: (height: Height, atMs: UInt64)?
    /// Bodies of the blocks named by `preparedCertificates` and the slots, kept across view
    /// changes (a VIEW-CHANGE carries headers only).
    var bodies = BlockBodies()
    /// The primary's next height to propose.
    var nextProposal: Height
    /// Highest height a NEW-VIEW installed: a replica that is behind may hold these slots above
    /// its own high watermark until its checkpoint catches up.
    var newViewMaxHeight: Height = 0

    // MARK: Checkpoints

    /// Checkpoint votes inside the window, one per sender per height.
    var checkpointVotes: [Height: [ReplicaID: Checkpoint]] = [:]
    var ownCheckpoints: [Height: Checkpoint] = [:]
    /// Checkpoint heights this replica executed but may not sign (below its signing floor):
    /// the block hash and state root it got, so a quorum's certificate can still be checked
    /// against its own execution before it becomes stable here.
    var unsignedCheckpoints: [Height: (blockHash: Digest, stateRoot: Digest)] = [:]

    /// The block this replica voted for (proposed, prepared or committed) at each height of
    /// the current view above the low watermark: recorded as it signs, and after a restart as
    /// its write-ahead log says, including heights whose slot could not be restored. It signs
    /// nothing else there.
    var votedInView: [Height: Digest] = [:]
    /// Set while `restore` or a NEW-VIEW's installation runs: nothing is proposed then.
    var proposalsHeld = false
    /// Set while rejoining after a lost disk: what this replica must not sign.
    public internal(set) var signingFloor: SigningFloor?
    /// Where the write-ahead log was last compacted (`Recovery.compactedThrough`): its records
    /// of what this replica signed at or below it are gone. That matters only when the ledger
    /// was cut back below it (damage) and the low watermark with it: nothing is voted at those
    /// heights, and no VIEW-CHANGE goes out until the stable checkpoint covers them again.
    var forgottenThrough: Height = 0
    /// The highest height this replica sent a COMMIT for, in any view of this life or one its
    /// write-ahead log recovered (`fastReadFloor`).
    var highestCommitSent: Height = 0

    // MARK: Clients

    var pool: RequestPool
    /// Requests in blocks delivered for execution whose results are not back yet: a copy that
    /// arrives in between (a backup's relay, a client's retry) is neither pooled nor proposed
    /// again. Empty whenever execution has caught up with delivery.
    var awaitingExecution: Set<RequestPool.Key> = []
    /// Each client's newest executed request id and the policy's admissions, as the executed
    /// state holds them (kept up to date by `.executed` and `.stateTransferred`).
    public internal(set) var executedClients: ExecutedClients

    // MARK: Timers and counters

    var requestTimerGeneration: UInt64 = 0
    var requestTimerArmed = false
    var batchTimerArmed = false
    var newViewTimerArmed = false
    /// `chain.height` when the retransmit timer last fired: retransmit slots only when stuck.
    var heightAtLastRetransmit: Height = 0
    /// How long the primary lets the requests this replica holds wait (backups only).
    var turnaround = TurnaroundMonitor()
    public internal(set) var rejections: [RejectReason: UInt64] = [:]

    /// The latest time the shell reported; never decreases.
    public internal(set) var nowMs: UInt64 = 0
    var output = Ready()

    // MARK: - Construction

    public init(config: ClusterConfig, id: ReplicaID, key: PrivateKey, verifier: SignatureVerifier,
                executedClients: ExecutedClients, epoch: UInt64 = 0, epochBase: ChainTip = .genesis,
                epochLastHeight: Height? = nil, recovery: Recovery? = nil, signingFloor: SigningFloor? = nil) {
        precondition(config.validator(id)?.publicKey == key.publicKey, "key does not belong to replica \(id)")
        self.config = config
        self.epoch = epoch
        self.epochBase = epochBase
        self.epochLastHeight = epochLastHeight
        self.id = id
        self.key = key
        self.verifier = verifier
        self.executedClients = executedClients
        self.signingFloor = signingFloor
        let tip = recovery?.tip ?? epochBase
        chain = tip
        lastExecuted = tip.height
        stable = recovery?.checkpoint
        nextProposal = tip.height + 1
        pool = RequestPool(capacity: config.parameters.batchRequestsMax * 8, perClientMax: 16)
        heightAtLastRetransmit = tip.height
        if let recovery { restore(recovery) }
    }

    /// Arms the periodic timers; call once after construction (and after a restart).
    public mutating func start(nowMs: UInt64) -> Ready {
        self.nowMs = max(self.nowMs, nowMs)
        output = Ready()
        emit(.setTimer(.retransmit, afterMs: retransmitIntervalMs))
        if isChangingView, let vc = ownViewChange {
            emit(.broadcast(.viewChange(vc)))
            armNewViewTimerIfQuorum()
        }
        armRequestTimer()
        // A state transfer the restored NEW-VIEW's checkpoint called for was never sent.
        if let target = stateTransferTarget {
            emit(.requestStateTransfer(height: target, checkpoint: stable?.height == target ? stable : nil))
        }
        // Re-announce own checkpoints above the stable one: they are deterministic, so this
        // cannot equivocate, and it helps a quorum form after a cluster-wide restart.
        for height in ownCheckpoints.keys.sorted() { emit(.broadcast(.checkpoint(ownCheckpoints[height]!))) }
        return takeOutput()
    }

    /// Feeds one event; returns what the shell must do, in order.
    public mutating func step(_ event: Event, nowMs: UInt64) -> Ready {
        self.nowMs = max(self.nowMs, nowMs)
        output = Ready()
        switch event {
        case let .message(message): receive(message)
        case let .clientRequest(request): receiveRequest(request, fromClient: true)
        case let .timerFired(timer): timerFired(timer)
        case let .executed(height, stateRoot, replies, policy):
            executed(height: height, stateRoot: stateRoot, replies: replies, policy: policy)
        case let .stateTransferred(tip, checkpoint, executed, clients):
            stateTransferred(tip: tip, checkpoint: checkpoint, executed: executed, clients: clients)
        case let .epochEnds(lastHeight):
            epochEnds(lastHeight: lastHeight)
        }
        checkInvariants()
        return takeOutput()
    }

    mutating func takeOutput() -> Ready {
        let out = output
        output = Ready()
        return out
    }

    mutating func emit(_ action: Action) { output.actions.append(action) }

    /// A record that must be durable before anything this step sends.
    mutating func persist(_ record: WALRecord) { output.persist.append(record) }

    mutating func reject(_ reason: RejectReason) { rejections[reason, default: 0] += 1 }

    /// A valid vote from `peer` shows it reached `height`.
    mutating func notePeerHeight(_ peer: ReplicaID, _ height: Height) {
        if peer != id, height > peerHeights[peer] ?? 0 { peerHeights[peer] = height }
    }

    // MARK: - Derived values

    public var primary: ReplicaID { config.primary(of: view) }
    /// Client requests waiting to be ordered, oldest first: carried into the next epoch.
    public var pendingRequests: [Request] { pool.requests }
    public var isPrimary: Bool { primary == id }
    var quorum: Int { config.quorum }

    var retransmitIntervalMs: UInt64 { max(20, parameters.viewChangeTimeoutMs / 8) }

    /// The request timeout, doubled for each consecutive view change (PBFT-TOCS §4.5.2).
    var viewChangeTimeoutMs: UInt64 {
        parameters.viewChangeTimeoutMs << UInt64(min(consecutiveViewChanges, 10))
    }

    // MARK: - Dispatch

    mutating func receive(_ message: Message) {
        if let sender = message.sender, config.validator(sender) == nil {
            reject(.unknownSender)
            return
        }
        // Range checks before any arithmetic on what the sender chose (`view` is this
        // replica's own, at most viewMax plus the views it moved itself, so the sum is safe).
        guard message.isInProtocolRange, message.highestView <= view + ProtocolBounds.viewsAheadMax else {
            reject(.outOfRange)
            return
        }
        switch message {
        case let .request(request): receiveRequest(request, fromClient: false)
        case let .prePrepare(m): receivePrePrepare(m)
        case let .prepare(m): receivePrepare(m)
        case let .commit(m): receiveCommit(m)
        case let .checkpoint(m): receiveCheckpoint(m)
        case let .checkpointProof(m): receiveCheckpointProof(m)
        case let .commitProof(m): receiveCommitProof(m)
        case let .viewChange(m): receiveViewChange(m)
        case let .newView(m): receiveNewView(m)
        }
    }

    mutating func timerFired(_ timer: TimerID) {
        switch timer {
        case .batch:
            batchTimerArmed = false
            proposeBatches(flush: true)
        case let .request(generation):
            guard requestTimerArmed, generation == requestTimerGeneration else { return }
            requestTimerArmed = false
            requestTimerExpired()
        case let .newView(target):
            guard isChangingView, view == target, newViewTimerArmed else { return }
            newViewTimerArmed = false
            // PBFT-TOCS §4.5.2: no NEW-VIEW in time; try the next view, with a longer timeout.
            startViewChange(to: view + 1)
        case .retransmit:
            retransmit()
            emit(.setTimer(.retransmit, afterMs: retransmitIntervalMs))
        }
    }

    /// Verifies a signature by `replica` over `message` through the shared cache.
    func isSigned(by replica: ReplicaID, _ signature: Signature, _ message: [UInt8]) -> Bool {
        guard let validator = config.validator(replica) else { return false }
        return verifier.isValid(signature, by: validator.publicKey, for: message)
    }

    // MARK: - Invariants

    /// Checked after every event: a failure is a bug in this file, never bad input.
    func checkInvariants() {
        precondition(lowWatermark <= chain.height || stateTransferTarget != nil, "stable checkpoint above delivered chain")
        precondition(lastExecuted <= chain.height, "executed beyond delivered")
        precondition(chain.history.size == chain.height, "history accumulator out of step with the chain")
        for (height, slot) in slots {
            precondition(height > lowWatermark && height <= max(highWatermark, newViewMaxHeight),
                         "slot \(height) outside the watermarks")
            precondition(!slot.committed || slot.prepared, "committed without prepared")
            if let p = slot.proposal { precondition(p.view == view && p.height == height, "slot holds a foreign pre-prepare") }
            if let body = slot.body { precondition(body.header == slot.proposal?.header, "slot holds a foreign body") }
        }
        precondition(waitingPrePrepares.count <= Int(parameters.watermarkWindow), "unbounded pre-prepare buffer")
        precondition(viewChanges.count <= config.n, "unbounded view-change buffer")
        precondition(bodies.count <= 2 * Int(parameters.watermarkWindow) * BlockBodies.perHeightMax, "unbounded body store")
        precondition(pool.count <= pool.capacity, "request pool over capacity")
    }
}

/// One height in the current view (PBFT's message log entry).
struct Slot: Sendable {
    /// The accepted PRE-PREPARE, body aside: a NEW-VIEW installs proposals by header, and a
    /// slot is prepared and committed by hash whether or not its body has arrived.
    var proposal: Proposal?
    /// The block's requests, once known: needed to deliver, not to vote.
    var body: Block?
    /// The whole PRE-PREPARE, when the body is here.
    var prePrepare: PrePrepare? { proposal.flatMap { p in body.flatMap { PrePrepare(p, body: $0) } } }
    /// The chain position after this block (known once its predecessor is).
    var tipAfter: ChainTip?
    /// One per sender; only those matching the pre-prepare's hash count.
    var prepares: [ReplicaID: Prepare] = [:]
    var commits: [ReplicaID: Commit] = [:]
    /// What this replica itself sent (or, after a restart, had sent) for this slot.
    var ownPrepare: Prepare?
    var ownCommit: Commit?
    /// When this backup accepted the pre-prepare in normal operation (for `TurnaroundMonitor`).
    var acceptedMs: UInt64?
    var prepared = false
    var committed = false
}

/// A delivered block above the stable checkpoint: what a checkpoint proof for it needs.
struct DeliveredBlock: Sendable {
    var header: BlockHeader
    var hash: Digest
    var historyBefore: MerkleAccumulator
}

/// The bodies of blocks this replica accepted, prepared or proposed above its stable checkpoint:
/// where a view change finds the requests of the proposals it re-proposes by header. At most
/// `perHeightMax` per height (a block a quorum prepared is kept before others), pruned as the
/// checkpoint moves: bounded by the window.
struct BlockBodies: Sendable {
    static let perHeightMax = 2
    private var byHeight: [Height: [Block]] = [:]

    var count: Int { byHeight.values.reduce(0) { $0 + $1.count } }

    func body(height: Height, hash: Digest) -> Block? {
        byHeight[height]?.first { $0.hash == hash }
    }

    /// Keeps `block`, the newest first; `keep` is the hash that must stay (the prepared one).
    mutating func add(_ block: Block, keep: Digest?) {
        let height = block.height
        var list = byHeight[height] ?? []
        let hash = block.hash
        list.removeAll { $0.hash == hash }
        list.insert(block, at: 0)
        while list.count > Self.perHeightMax {
            let victim = list.lastIndex { $0.hash != keep } ?? list.count - 1
            list.remove(at: victim)
        }
        byHeight[height] = list
    }

    mutating func prune(through height: Height) {
        for h in byHeight.keys where h <= height { byHeight[h] = nil }
    }
}
