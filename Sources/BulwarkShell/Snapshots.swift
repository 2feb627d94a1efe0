import BulwarkCore
import BulwarkStateMachine
import BulwarkStorage
import Logging

/// Snapshots of the state at certified checkpoints (ARCHITECTURE.md §4), so that a restart replays
/// only the blocks after the newest snapshot instead of the whole ledger.
///
/// Every `interval` blocks (a multiple of the checkpoint interval) the replica keeps a copy of
/// its state as it was right after that block, with the chain tip before the block. Once a
/// stable checkpoint certifies that height's state root, the copy is encoded and written on a
/// background queue, since encoding a large state must not hold up the core loop. The file
/// holds the tip before the block and the state after it. At start-up the block itself comes
/// from the block log, so the snapshot is checked against the log and against the execution
/// certificate stored there, and is never trusted on its own.
struct StateSnapshots {
    let directory: String
    /// Blocks between snapshots; 0 turns them off.
    let interval: Height
    /// The state after the newest block at a snapshot height, waiting for its certificate,
    /// and `requestsSince` when it was taken.
    var candidate: (state: KeyValueState, tipBefore: ChainTip, requestsSince: Int)?
    /// Requests executed since the state of the newest snapshot written (or loaded).
    var requestsSince: Int
    /// The size of the newest snapshot written (or loaded).
    var lastBytes: Int

    /// A snapshot is also held back until at least one request per `bytesPerRequest` bytes of
    /// the last snapshot ran since it, because the state (every key and client, and each
    /// key's position in the history file) grows with the ledger. Measured here: executing a request costs about 30 µs; encoding and
    /// writing a 30 MB snapshot took about 50 ns a byte (wall time, under full load), and
    /// loading one about 33 ns a byte. With 200 bytes per request, snapshot work stays under
    /// about a third of execution work, and a restart replays at most about five times the
    /// snapshot's own load time, however large the state grows.
    static let bytesPerRequest = 200

    /// `requested` rounded up to a multiple of the checkpoint interval, since only checkpoint
    /// heights are ever certified.
    init(directory: String, requested: Height, checkpointInterval: Height, lastBytes: Int = 0, requestsSince: Int = 0) {
        self.directory = directory
        interval = requested == 0 ? 0 : (requested + checkpointInterval - 1) / checkpointInterval * checkpointInterval
        self.lastBytes = lastBytes
        self.requestsSince = requestsSince
    }

    /// Whether the state after the block at `height` should become a snapshot.
    func isDue(at height: Height) -> Bool {
        interval > 0 && height % interval == 0 && requestsSince * Self.bytesPerRequest >= lastBytes
    }

    static func encode(state: KeyValueState, tipBefore: ChainTip) -> [UInt8] {
        var w = CanonicalWriter(capacity: 4096)
        w.write(tipBefore)
        w.writeRaw(state.snapshot())
        return w.bytes
    }

    /// What start-up resumes from: the state after block `entry` and the tip after it.
    struct Restored {
        var bytes: Int
        var state: KeyValueState
        var tipBefore: ChainTip
        var entry: LedgerEntry
        var certificate: ExecutionCertificate
        var tip: ChainTip { tipBefore.appending(entry.block.header, hash: entry.block.hash) }
    }

    /// The newest snapshot at or below the ledger's height that agrees with the ledger: its
    /// tip links to the block at its height and an execution certificate in the log certifies
    /// its state root. Snapshots that do not are reported and passed over.
    static func load(directory: String, fileSystem: any FileSystem, blockLog: BlockLog, cluster: ClusterID,
                     history: any KeyHistoryStore, logger: Logger) -> Restored? {
        do {
            return try SnapshotStore(directory: directory, fileSystem: fileSystem).latest(atOrBelow: blockLog.height, skipped: { height, error in
                logger.warning("state snapshot unusable; trying an older one", metadata: ["height": "\(height)", "reason": "\(error)"])
            }, use: { height, bytes in
                try restore(bytes, height: height, blockLog: blockLog, cluster: cluster, history: history)
            })?.value
        } catch {
            logger.warning("cannot read state snapshots; replaying the whole ledger", metadata: ["error": "\(error)"])
            return nil
        }
    }

    struct Mismatch: Error, CustomStringConvertible {
        let description: String
    }

    static func restore(_ bytes: [UInt8], height: Height, blockLog: BlockLog, cluster: ClusterID,
                        history: any KeyHistoryStore) throws -> Restored {
        var r = CanonicalReader(bytes)
        let tipBefore = try r.read(ChainTip.self)
        var state = try KeyValueState(snapshot: Array(try r.readRaw(r.remaining, "state snapshot")), cluster: cluster,
                                      history: history)
        let entry = try blockLog.entry(at: height)
        guard state.height == height, tipBefore.height + 1 == height, tipBefore.isLinked(to: entry.block.header) else {
            throw Mismatch(description: "it does not follow the block log at height \(height)")
        }
        guard let certificate = blockLog.executionCertificate(at: height),
              certificate.blockHash == entry.block.hash, certificate.stateRoot == state.stateRoot else {
            throw Mismatch(description: "no execution certificate in the block log certifies its state root")
        }
        return Restored(bytes: bytes.count, state: state, tipBefore: tipBefore, entry: entry, certificate: certificate)
    }
}

extension StateSnapshots {
    /// After executing a block of `requests` requests: keep a copy of the state if a snapshot
    /// is due at its height. The copy shares storage with the live state until the next write.
    mutating func noteExecuted(requests: Int, state: KeyValueState, tipBefore: ChainTip) {
        requestsSince += requests
        guard isDue(at: state.height) else { return }
        candidate = (state, tipBefore, requestsSince)
    }

    /// The kept copy, if `certificate` certifies it: what to encode and write. Taking it
    /// counts its requests as snapshotted.
    mutating func take(certified certificate: ExecutionCertificate) -> (state: KeyValueState, tipBefore: ChainTip)? {
        guard let kept = candidate, kept.state.height <= certificate.height else { return nil }
        candidate = nil
        var state = kept.state // settled at its checkpoint: reading its root costs nothing
        guard state.height == certificate.height, state.stateRoot == certificate.stateRoot else { return nil }
        requestsSince -= kept.requestsSince
        return (state, kept.tipBefore)
    }
}

extension ReplicaShell {
    /// A stable checkpoint certified `certificate`: write the kept copy if it is that state,
    /// in the background (encoding a large state must not hold up the loop).
    func writeSnapshot(certified certificate: ExecutionCertificate) {
        guard let (state, tipBefore) = ledger.snapshots.take(certified: certificate) else { return }
        let directory = ledger.snapshots.directory, logger = self.logger, clock = Unchecked(clock)
        let fileSystem = Unchecked(fileSystem), history = ledger.history
        let written = Box<Int?>(nil)
        workers.background({
            let started = clock.value.monotonicNs
            let bytes = StateSnapshots.encode(state: state, tipBefore: tipBefore)
            do {
                // The snapshot names positions in the history file: those must be durable first.
                try history.sync()
                try SnapshotStore(directory: directory, fileSystem: fileSystem.value).save(bytes, height: certificate.height)
                written.value = bytes.count
                logger.info("state snapshot written", metadata: ["height": "\(certificate.height)", "bytes": "\(bytes.count)",
                                                                 "ms": "\((clock.value.monotonicNs &- started) / 1_000_000)"])
            } catch {
                logger.warning("cannot write a state snapshot; a restart will replay more blocks",
                               metadata: ["height": "\(certificate.height)", "error": "\(error)"])
            }
        }, then: { [self] in
            guard let bytes = written.value else { return }
            ledger.snapshots.lastBytes = bytes
            notify(.snapshotWritten(height: certificate.height, bytes: bytes))
        })
    }
}
