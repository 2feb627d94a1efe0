import BulwarkConsensus
import BulwarkCore
import BulwarkStorage
import Logging

/// The data directory of a replica joining the cluster (`bulwark node --join`), filled with
/// committed blocks fetched from the cluster before the replica itself starts. Every block is
/// checked as state transfer checks it — link, epoch, commit certificate against the
/// validators of the epoch in force at its height, client signatures — and executed, so the
/// configuration of each epoch is learnt from the ledger itself, starting from cluster.json.
/// Nothing unverified is stored; the replica that starts afterwards recovers from these blocks.
public final class JoiningLedger {
    var ledger: LedgerExecution
    let verifier = SignatureVerifier()
    /// The joining replica's key, and whether an epoch of the blocks held ever listed it.
    public let key: PublicKey
    public private(set) var wasListed = false

    public init(genesis: ClusterConfig, key: PublicKey, dataDirectory: String, fileSystem: any FileSystem = PosixFileSystem(),
                logger: Logger) throws {
        ledger = try LedgerExecution.recover(directory: dataDirectory, fileSystem: fileSystem, genesis: genesis,
                                             snapshotInterval: 0, segmentBytesMax: BlockLog.segmentBytesDefault,
                                             logger: logger).ledger
        self.key = key
        noteListing()
    }

    /// An epoch lists the key: remembered, so that a later epoch without it reads as a removal.
    func noteListing() {
        if ledger.state.governance.config.replicaID(of: key) != nil { wasListed = true }
    }

    /// The replicated configuration after the blocks held.
    public var governance: Governance { ledger.state.governance }
    public var height: Height { ledger.tip.height }

    /// Checks, stores and executes the entries that extend the ledger, in order; returns how
    /// many did. Throws `LedgerError` at the first that fails a check (the ones before it are
    /// kept), or a storage error.
    @discardableResult
    public func append(_ entries: [LedgerEntry]) throws -> Int {
        var added = 0
        // The next block only; the comparison comes first, so the difference cannot underflow.
        for entry in entries where entry.block.height > height && entry.block.height - height == 1 {
            _ = try ledger.appendVerified(entry, verifier: verifier)
            noteListing()
            added += 1
        }
        try ledger.blockLog.sync()
        try ledger.history.flush()
        return added
    }
}

/// The join (`bulwark node --join`) as a state machine without I/O of its own: whom to ask
/// for which blocks, which answer counts, when to ask again, and when the ledger is far enough
/// along to start as a validator. Both drivers — `ReplicaJoin` over NIO and the simulator —
/// feed it the same inputs (an answer, a refusal, a timeout, the end of a wait) and carry out
/// the same steps; the blocks themselves go through `JoiningLedger`, which checks each one.
public struct JoinProgress: Sendable {
    public let key: PublicKey
    /// Turns so far: each failed or empty answer moves on to the next peer.
    public private(set) var attempt = 0
    /// The question outstanding, if any: its number and the peer asked.
    public private(set) var outstanding: (question: Int, peer: ReplicaID)?
    var questions = 0
    /// Why the last answer received failed the checks (nil: it passed), for the driver's log.
    public private(set) var rejection: LedgerError?
    /// How long a peer has to answer before the next one is asked, and how long to wait when
    /// the peers have nothing newer and no epoch lists the key yet.
    public static let answerTimeoutMs: UInt64 = 1_000
    public static let waitMs: UInt64 = 200

    public init(key: PublicKey) { self.key = key }

    /// What to do next.
    public enum Step: Equatable, Sendable {
        /// Ask at once (`ask(_:)`).
        case ask
        /// The peers have nothing newer and no epoch lists this key yet: ask again after `waitMs`.
        case wait
        /// An epoch lists this key as this validator and the peer asked has nothing newer.
        case done(ReplicaID)
        /// An epoch listed this key and a later one removed it before the join finished: it
        /// must not start.
        case removed
    }

    /// A question to send: a `fetchBlocks` frame to `peer`, to be answered within
    /// `answerTimeoutMs` (then `timedOut(question:)`).
    public struct Question: Sendable {
        public let number: Int
        public let peer: ReplicaID
        public let frame: [UInt8]
    }

    /// Asks the next peer for the blocks after the ledger's tip.
    public mutating func ask(_ ledger: JoiningLedger) -> Question {
        let config = ledger.governance.config
        let listed = config.replicaID(of: key)
        let peers = config.ids.filter { $0 != listed }
        let from = ledger.height + 1
        let span = Height(ClientFrame.blocksMax - 1)
        let peer = peers[attempt % peers.count]
        questions += 1
        outstanding = (questions, peer)
        return Question(number: questions, peer: peer,
                        frame: ClientFrame.fetchBlocks(from: from, to: from > .max - span ? .max : from + span).encoded())
    }

    /// Blocks from `peer`. Only the peer asked answers the question outstanding; anything else
    /// is ignored (nil). The blocks that extend the ledger are checked and kept; one that fails
    /// its checks ends that peer's turn. Throws only when storage fails.
    public mutating func received(_ entries: [LedgerEntry], from peer: ReplicaID, ledger: JoiningLedger) throws -> Step? {
        guard outstanding?.peer == peer else { return nil }
        var added: Int?
        rejection = nil
        do { added = try ledger.append(entries) } catch let error as LedgerError {
            rejection = error
            added = nil
        }
        return answered(added: added, ledger: ledger)
    }

    /// `peer` refused to serve blocks to this key (the change adding it is not approved yet):
    /// its turn is over.
    public mutating func refused(by peer: ReplicaID, ledger: JoiningLedger) -> Step? {
        guard outstanding?.peer == peer else { return nil }
        return answered(added: nil, ledger: ledger)
    }

    /// Question `question` went unanswered; nil if it was answered meanwhile.
    public mutating func timedOut(question: Int, ledger: JoiningLedger) -> Step? {
        guard outstanding?.question == question else { return nil }
        return answered(added: nil, ledger: ledger)
    }

    /// An answer that added `added` blocks; nil when the peer sent nothing in time or a
    /// block that failed its checks.
    mutating func answered(added: Int?, ledger: JoiningLedger) -> Step {
        outstanding = nil
        guard let added else {
            attempt += 1
            return .ask
        }
        guard added == 0 else { return .ask }
        if let id = ledger.governance.config.replicaID(of: key) { return .done(id) }
        if ledger.wasListed { return .removed }
        attempt += 1
        return .wait
    }
}
