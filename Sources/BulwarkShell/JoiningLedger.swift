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
        for entry in entries where entry.block.height == height + 1 {
            _ = try ledger.appendVerified(entry, verifier: verifier)
            added += 1
        }
        try ledger.blockLog.sync()
        try ledger.history.flush()
        return added
    }
}
