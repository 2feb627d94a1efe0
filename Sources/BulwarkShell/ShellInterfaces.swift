import BulwarkConsensus
import BulwarkCore
import BulwarkStorage

/// Why a replica cannot start, in one sentence.
public struct NodeStartupError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The timers a shell asks its driver to run: the core's, and its own state-transfer retry.
public enum ShellTimer: Hashable, Sendable {
    case core(TimerID)
    /// No progress from the peer asked in this state-transfer attempt: ask the next one.
    case transferRetry(attempt: Int)
    /// Time to check the next sealed block-log segment for latent damage.
    case scrub
    /// Ask the peers that have not answered a start-up probe again.
    case probeRetry
}

/// How a shell reaches other replicas and clients. Frames are encoded; delivery is best
/// effort (the protocol retransmits). Frames that arrive are handed to `ReplicaShell.handle`
/// as `ShellInput`s, after `ShellIntake` decoded and checked them.
public protocol ShellNetwork: AnyObject {
    /// Sends `frame` to replica `peer` once `afterMs` milliseconds have passed (0: now).
    func send(_ frame: [UInt8], to peer: ReplicaID, afterMs: UInt64)
    /// Sends `frame` on `client`'s authenticated connection, if it is connected.
    func send(_ frame: [UInt8], toClient client: PublicKey)
    /// A new epoch's configuration is in force: reach (and accept) its validators at its
    /// addresses with its keys, and no others.
    func configure(_ config: ClusterConfig)
    /// Whether `client` is reading what it was sent: false while its connection still holds an
    /// unwritten answer, or all clients' answers fill their budget. Serving work for a client
    /// that is not reading (reading blocks, building a proof) is skipped, not done and dropped.
    func isReading(client: PublicKey) -> Bool
}

extension ShellNetwork {
    public func isReading(client: PublicKey) -> Bool { true }
}

/// How a shell reads time and sets timers. The core's time is `nowMs`; `monotonicNs` only
/// measures durations for metrics.
public protocol ShellClock: AnyObject {
    var nowMs: UInt64 { get }
    var monotonicNs: UInt64 { get }
    /// Calls `ReplicaShell.fire(timer)` after `afterMs` milliseconds.
    func schedule(_ timer: ShellTimer, afterMs: UInt64)
}

/// Where a shell puts work that must not hold up its serial loop: reading and sending
/// state-transfer answers and proofs, and writing snapshots. A driver without threads (the
/// simulator, unit tests) runs the work at once.
public protocol ShellWorkers: AnyObject {
    /// Runs `work` (which only reads files and sends frames) unless too much of its class
    /// already waits; false when it was dropped (the peer or client asks again). Peers' work
    /// has capacity of its own, which clients cannot take.
    func serve(_ kind: ServingClass, _ work: @escaping @Sendable () -> Void) -> Bool
    /// Runs `work` in the background, one piece at a time, then `done` back on the loop.
    func background(_ work: @escaping @Sendable () -> Void, then done: @escaping () -> Void)
}

/// Workers for a driver without threads: every piece of work runs at once, in the caller.
/// Whose serving work it is: a peer's state transfer keeps capacity that clients (any key that
/// completes a handshake) cannot use up (SPEC.md §20).
public enum ServingClass: Sendable {
    case peer, client
}

public final class InlineWorkers: ShellWorkers {
    public init() {}

    public func serve(_ kind: ServingClass, _ work: @escaping @Sendable () -> Void) -> Bool {
        work()
        return true
    }

    public func background(_ work: @escaping @Sendable () -> Void, then done: @escaping () -> Void) {
        work()
        done()
    }
}

/// What arrives for the shell, decoded and pre-checked (`ShellIntake`).
public enum ShellInput: Sendable {
    case event(Event)
    /// A consensus message from replica `from`, sent in `epoch`.
    case consensus(Message, epoch: UInt64, from: ReplicaID)
    case peerFrame(PeerFrame, from: ReplicaID)
    case proveRequest(key: [UInt8], nonce: UInt64, client: PublicKey)
    /// A joining replica, connected as a client, asks for committed blocks.
    case fetchBlocks(from: Height, to: Height, client: PublicKey)
    /// A client following the cluster asks how the configuration changed after epoch `from`.
    case epochProofsRequest(from: UInt64, nonce: UInt64, client: PublicKey)
    /// A fast read (SPEC.md §8.6).
    case fastRead(key: [UInt8], nonce: UInt64, client: PublicKey)
}

/// Input dropped before it reached the core, counted by reason.
public enum DropReason: String, CaseIterable, Sendable {
    case undecodablePeerFrame = "undecodable_peer_frame"
    case senderMismatch = "sender_mismatch"
    case undecodableClientFrame = "undecodable_client_frame"
    case badClientSignature = "bad_client_signature"
    case badTransferredBlock = "bad_transferred_block"
    /// A state-transfer request for a range that is empty, inverted or beyond the ledger.
    case badTransferRequest = "bad_transfer_request"
    /// The driver's inbox was at its bound (the transport had been asked to stop reading).
    case inboxFull = "inbox_full"
    /// A state-transfer or proof request over its sender's rate, or more serving work
    /// waiting than the bound.
    case rateLimited = "rate_limited"
    /// A consensus message of another epoch than this replica's.
    case otherEpoch = "other_epoch"
    /// A request from a key a closed cluster's policy does not bind (nor an admin's).
    case unboundClient = "unbound_client"
    /// A client key that may not read every key asked for blocks (SPEC.md §19.4).
    case blocksRefused = "blocks_refused"
    /// A proof or blocks request from a client that has not read its last answer.
    case clientNotReading = "client_not_reading"
    /// A progress report whose commit certificate does not hold, or whose numbers are out of range.
    case badProgressReport = "bad_progress_report"
    /// Consensus input or a request that arrived before the replica started (while it asks
    /// the peers whether the cluster is new, or how far it got).
    case notStarted = "not_started"
}

/// What the shell did, for metrics, logs and the simulator's report.
public enum ShellNotice: Sendable {
    case dropped(DropReason)
    /// A new configuration epoch began with block `firstHeight`.
    case enteredEpoch(UInt64, firstHeight: Height)
    case walSynced(nanoseconds: UInt64)
    case blockLogSynced(nanoseconds: UInt64)
    /// A block was executed (delivered by consensus, fetched, or replayed at start-up).
    /// `denied` of the block's requests executed as permission denied (SPEC.md §19.2).
    /// `stateRoot` at a checkpoint height: the root the replica computed there anyway (it
    /// settles the authenticated map only at checkpoints, so no observer makes it do more).
    case executed(height: Height, requests: Int, denied: Int, stateRoot: Digest?)
    /// A reply left for a client; the latency from the request's arrival here, if known.
    case replied(latencyNanoseconds: UInt64?)
    case refused(RequestRefusal)
    case enteredView(View, primary: ReplicaID)
    case suspectedPrimary(view: View, primary: ReplicaID, meanTurnaroundMs: UInt64, allowedMs: UInt64)
    case sentViewChange(ViewChange)
    /// A consensus message left for the peers (once per broadcast), in `epoch`: what the
    /// replica signed, for the simulator's check that it never signs two different ones.
    case sent(Message, epoch: UInt64)
    case stateTransferStarted(from: Height, target: Height)
    case stateTransferDone(height: Height)
    /// A state-transfer answer failed its checks (forged, truncated, out of order).
    case transferRejected(peer: ReplicaID)
    /// A block fetched by state transfer was stored and executed; its checkpoint's state root
    /// at a checkpoint height.
    case transferredBlock(Height, stateRoot: Digest?)
    /// Consensus delivered a block that state transfer had already stored (the two raced).
    case deliveredAfterTransfer(Height)
    /// Consensus delivered the blocks up to a state transfer's target before the transfer
    /// fetched them: the transfer ends there.
    case transferOvertaken(target: Height)
    case snapshotWritten(height: Height, bytes: Int)
    /// Scrubbing found damage in the block log: the log was cut there and the replica stops,
    /// to restart and repair the rest from peers.
    case damageFound(LogDamage)
    /// Rejoining after a lost disk: nothing at or below this floor is signed.
    case rejoining(SigningFloor)
    /// Past the floor: the replica signs normally again.
    case rejoined(SigningFloor)
}

/// A value handed to work a driver may run on another thread. The shell hands over only what
/// is safe there: the POSIX file system holds no state, the simulator runs such work at once.
public struct Unchecked<Value>: @unchecked Sendable {
    public var value: Value
    public init(_ value: Value) { self.value = value }
}

/// A result such work leaves for the loop, read only after the work finished.
final class Box<Value>: @unchecked Sendable {
    var value: Value
    init(_ value: Value) { self.value = value }
}
