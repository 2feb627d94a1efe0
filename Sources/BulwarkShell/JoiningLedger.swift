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

    public init(genesis: ClusterConfig, dataDirectory: String, fileSystem: any FileSystem = PosixFileSystem(),
                logger: Logger) throws {
        ledger = try LedgerExecution.recover(directory: dataDirectory, fileSystem: fileSystem, genesis: genesis,
                                             snapshotInterval: 0, segmentBytesMax: BlockLog.segmentBytesDefault,
                                             logger: logger).ledger
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
            added += 1
        }
        try ledger.blockLog.sync()
        try ledger.history.flush()
        return added
    }
}

/// The decisions of a join (`bulwark node --join`), without I/O: whom to ask for which blocks
/// next, and when the ledger is far enough along to start as a validator. The NIO driver
/// (`ReplicaJoin`) and the simulator drive the same steps.
public struct JoinProgress: Sendable {
    public let key: PublicKey
    /// Turns so far: each failed or empty answer moves on to the next peer.
    public private(set) var attempt = 0

    public init(key: PublicKey) { self.key = key }

    /// What to do after an answer.
    public enum Step: Equatable, Sendable {
        /// Ask (the next peer, or the same one for more) at once.
        case ask
        /// The peers have nothing newer and no epoch lists this key yet: ask again later.
        case wait
        /// An epoch lists this key as this validator and the peer asked has nothing newer.
        case done(ReplicaID)
    }

    /// The peer to ask next and the range of blocks to ask for.
    public func request(_ ledger: JoiningLedger) -> (peer: ReplicaID, from: Height, to: Height) {
        let config = ledger.governance.config
        let listed = config.replicaID(of: key)
        let peers = config.ids.filter { $0 != listed }
        let from = ledger.height + 1
        let span = Height(ClientFrame.blocksMax - 1)
        return (peers[attempt % peers.count], from, from > .max - span ? .max : from + span)
    }

    /// An answer that added `added` blocks; nil when the peer sent nothing in time or a
    /// block that failed its checks.
    public mutating func answered(added: Int?, ledger: JoiningLedger) -> Step {
        guard let added else {
            attempt += 1
            return .ask
        }
        guard added == 0 else { return .ask }
        if let id = ledger.governance.config.replicaID(of: key) { return .done(id) }
        attempt += 1
        return .wait
    }
}
