import BulwarkCore

/// A reply to a client: the result of executing (client, requestID) in block `height`.
/// `result` is the encoded `OperationResult`; consensus treats it as opaque bytes.
public struct Reply: Hashable, Sendable {
    public var client: PublicKey
    public var requestID: UInt64
    public var height: Height
    public var result: [UInt8]

    public init(client: PublicKey, requestID: UInt64, height: Height, result: [UInt8]) {
        self.client = client
        self.requestID = requestID
        self.height = height
        self.result = result
    }
}

/// Timers the core asks the shell to run. A timer that fires after the core stopped caring
/// about it is ignored (generations and views make stale timers recognisable).
public enum TimerID: Hashable, Sendable {
    /// The primary's batch delay ran out: propose what is pending.
    case batch
    /// PBFT's request timer: the oldest pending request may have waited too long.
    case request(generation: UInt64)
    /// Waiting for NEW-VIEW of this view took too long: move on to the next view.
    case newView(View)
    /// Re-send own messages so that losses heal.
    case retransmit
}

/// Inputs to the core. Time arrives with every step, never from a clock inside.
public enum Event: Sendable {
    /// The executed ledger scheduled a configuration change: this epoch ends with block
    /// `lastHeight` (SPEC.md §18.4).
    case epochEnds(lastHeight: Height)
    /// A message from another replica (or a client request relayed on the replica network).
    case message(Message)
    /// A request straight from a client.
    case clientRequest(Request)
    case timerFired(TimerID)
    /// The shell executed the block at `height` (delivered by `.execute`), in order. The state
    /// root after it is needed, and must be given, only at checkpoint heights (the only roots
    /// signed); elsewhere the shell may leave it out, since computing it settles the state's
    /// authenticated map, which is cheaper done once per checkpoint.
    /// `policy` is the executed state's policy index after the block (nil: unchanged).
    case executed(height: Height, stateRoot: Digest?, replies: [Reply], policy: PolicyIndex? = nil)
    /// The shell finished a state transfer: the ledger now ends at `tip`, with `checkpoint`
    /// the newest stable checkpoint it verified, and `executed` the state after each checkpoint
    /// height it executed on the way (so this replica signs those checkpoints like any other,
    /// and stable checkpoints keep forming). `clients` is what the state that came with the
    /// blocks says of its clients.
    case stateTransferred(tip: ChainTip, checkpoint: CheckpointProof?, executed: [ExecutedCheckpoint], clients: ExecutedClients)
}

/// What one step of the core asks of its shell, in the only order it may be done: first make
/// every record in `persist` durable (together: one sync), then carry out `actions` in order
/// (persist-before-send, as etcd-raft's `Ready`). The order is the type's: no action can come
/// before the records, whatever actions are added.
public struct Ready: Sendable {
    /// WAL records: what this replica signed and saw, durable before anything is sent.
    public internal(set) var persist: [WALRecord] = []
    /// Sends, timers, executions, replies, in order.
    public var actions: [Action] = []

    public init() {}

    public var isEmpty: Bool { persist.isEmpty && actions.isEmpty }

    /// `other` after this (group commit): its records join the same sync, its actions follow.
    public mutating func append(_ other: Ready) {
        persist += other.persist
        actions += other.actions
    }
}

/// An output of the core, carried out in order once the step's records are durable (`Ready`).
public enum Action: Sendable {
    case send(Message, to: ReplicaID)
    case broadcast(Message)
    case setTimer(TimerID, afterMs: UInt64)
    /// Append `block` with its commit certificate to the ledger and execute it; answer with
    /// `.executed`. Blocks arrive in height order, each exactly once.
    case execute(Block, CommitCertificate)
    /// Send this reply to its client once the block is durable.
    case reply(Reply)
    /// A retransmission of `client`'s newest executed request (PBFT §4.1): send it the reply
    /// the executed state holds for it.
    case replyAgain(client: PublicKey, requestID: UInt64)
    /// Tell a client its request was refused before ordering (only for requests straight
    /// from the client, never for relayed ones).
    case refuse(client: PublicKey, requestID: UInt64, RequestRefusal)
    /// An execution certificate formed at this height; the shell stores it in the ledger and
    /// may drop write-ahead-log records at or below it.
    case checkpointStable(CheckpointProof)
    /// The replica is behind: fetch blocks from peers up to at least `height`, verify each
    /// block and certificate, execute them, and answer with `.stateTransferred`. `checkpoint`
    /// is the stable checkpoint that revealed the gap, if one did.
    case requestStateTransfer(height: Height, checkpoint: CheckpointProof?)
    /// Entered a new view (for logs and metrics).
    case enteredView(View, primary: ReplicaID)
    /// The primary of `view` kept this replica's requests waiting `meanTurnaroundMs` on average
    /// over a window, more than the `allowedMs` the network needs: the replica asked for a view
    /// change (for logs and metrics).
    case suspectedPrimary(view: View, primary: ReplicaID, meanTurnaroundMs: UInt64, allowedMs: UInt64)
    /// This replica's own execution disagrees with a quorum: its state machine is not
    /// deterministic or its storage is damaged. The replica must stop rather than continue.
    case fault(String)
}

/// Why a message was dropped; counted per reason (ARCHITECTURE.md §3: bad input is counted and dropped).
public enum RejectReason: String, Hashable, Sendable, CaseIterable {
    case unknownSender
    case badSignature
    case wrongView
    case outsideWatermarks
    case notFromPrimary
    case primaryPrepare
    case conflictingPrePrepare
    case equivocation
    /// A proposal whose header does not link to the chain (height, previous hash, history root,
    /// cluster, view or proposer wrong).
    case invalidBlock
    /// A proposal whose timestamp is further from this replica's clock than the skew bound.
    case badTimestamp
    /// A proposal holding a malformed, oversized, unsigned or repeated request, or a wrong txRoot.
    case invalidBatch
    case invalidRequest
    case staleRequest
    case poolFull
    case invalidCheckpoint
    case invalidViewChange
    case invalidNewView
    case oversized
    /// A height or view outside the protocol's range (height 0, beyond `ProtocolBounds`, or a
    /// view too far ahead): dropped before any arithmetic touches it.
    case outOfRange
    /// A checkpoint vote for a height already stable here (normal: the slowest replica's vote).
    case lateCheckpoint
    /// A request, relayed or inside a proposal, of a key the policy does not admit (a closed
    /// cluster's stranger, SPEC.md §19.4).
    case unknownClient
}

/// The state after a checkpoint-height block that the shell executed outside the normal path
/// (state transfer, or replaying the ledger on restart).
public struct ExecutedCheckpoint: Hashable, Sendable {
    public var header: BlockHeader
    /// The history accumulator before this block.
    public var historyBefore: MerkleAccumulator
    public var stateRoot: Digest

    public init(header: BlockHeader, historyBefore: MerkleAccumulator, stateRoot: Digest) {
        self.header = header
        self.historyBefore = historyBefore
        self.stateRoot = stateRoot
    }
}

/// What a restarting replica recovers from disk.
public struct Recovery: Sendable {
    /// The end of the durable ledger.
    public var tip: ChainTip
    /// The newest stored stable checkpoint.
    public var checkpoint: CheckpointProof?
    /// The write-ahead log, oldest first.
    public var wal: [WALRecord]
    /// Checkpoint heights above `checkpoint` that the ledger holds, with their state.
    public var executed: [ExecutedCheckpoint]
    /// The stable checkpoint the write-ahead log was last compacted at: it no longer records
    /// what this replica signed at or below it.
    public var compactedThrough: Height

    public init(tip: ChainTip, checkpoint: CheckpointProof?, wal: [WALRecord], executed: [ExecutedCheckpoint] = [],
                compactedThrough: Height = 0) {
        self.tip = tip
        self.checkpoint = checkpoint
        self.wal = wal
        self.executed = executed
        self.compactedThrough = compactedThrough
    }
}

/// What the core knows of the executed state's clients, as a value it owns: each client's
/// newest executed request id (the deduplication table's keys, without the results), and the
/// policy's index of the keys it orders at all. The shell hands it over whole when it builds a
/// core and after a state transfer, and the changes with every executed block
/// (`Event.executed`); the core reads nothing else of the state machine, so a step is a
/// function of the core's state and the event alone.
public struct ExecutedClients: Sendable {
    var lastRequestIDs: [PublicKey: UInt64]
    var policy: PolicyIndex

    public init(lastRequestIDs: [PublicKey: UInt64], policy: PolicyIndex) {
        self.lastRequestIDs = lastRequestIDs
        self.policy = policy
    }

    /// `client`'s newest executed request id, if it ever executed one.
    public func lastRequestID(of client: PublicKey) -> UInt64? { lastRequestIDs[client] }

    /// Whether the executed state's policy orders `client`'s requests at all (a closed
    /// cluster's strangers are refused before ordering on every path, SPEC.md §19.4).
    public func admits(_ client: PublicKey) -> Bool { policy.admits(client) }

    /// A block executed with these replies, under `policy` when given.
    mutating func noteExecuted(_ replies: [Reply], policy: PolicyIndex?) {
        for reply in replies where lastRequestIDs[reply.client].map({ reply.requestID > $0 }) ?? true {
            lastRequestIDs[reply.client] = reply.requestID
        }
        if let policy { self.policy = policy }
    }
}
