import BulwarkConsensus
import BulwarkCore
import BulwarkStateMachine
import BulwarkStorage
import Logging

/// The ledger as this replica executed it: the block log, the state machine and its key
/// history, and the bookkeeping of executed checkpoints. Every block a replica holds goes
/// through `apply` exactly once per process, whether consensus delivered it, a peer sent it
/// in state transfer, or start-up replays it from the block log.
struct LedgerExecution {
    let blockLog: BlockLog
    /// Every version of every key, in a file beside the block log (derived from it).
    let history: FileKeyHistory
    var state: KeyValueState
    /// The end of the executed ledger (the block log may end further only while a block is
    /// being appended).
    var tip: ChainTip
    /// The state at executed checkpoints not yet certified: what proofs and checkpoint votes
    /// are made from.
    var checkpointStates: [Height: ProvableState] = [:]
    /// The newest certified checkpoint with its execution certificate: what `prove` reads.
    var certified: (state: ProvableState, certificate: ExecutionCertificate)?
    var snapshots: StateSnapshots
    /// The governance proven right after each epoch boundary executed (`epochs.log`).
    let epochProofs: EpochProofLog
    /// Writes to `epochs.log` that failed (the proofs are kept in memory all the same).
    var epochProofWriteFailures = 0

    /// Executes `entry`, the next block, which the block log already holds. Returns the
    /// outcome of each request and, at a checkpoint height, the executed checkpoint.
    mutating func apply(_ entry: LedgerEntry) throws -> (outcomes: [KeyValueState.Outcome], checkpoint: ExecutedCheckpoint?) {
        let before = tip
        tip = tip.appending(entry.block.header, hash: entry.block.hash)
        // The block's epoch decides whether it is a checkpoint; executing it may end the epoch.
        let interval = state.limits.checkpointInterval
        let epoch = state.governance.epoch
        let outcomes = try state.execute(entry.block)
        if state.governance.epoch != epoch { noteBoundary() }
        snapshots.noteExecuted(requests: entry.block.requests.count, state: state, tipBefore: before)
        let height = entry.block.height
        guard height % interval == 0 else { return (outcomes, nil) }
        checkpointStates[height] = state.provable
        return (outcomes, ExecutedCheckpoint(header: entry.block.header, historyBefore: before.history, stateRoot: state.stateRoot))
    }

    /// The block just executed ended an epoch: the map as it is now is what the boundary's
    /// execution certificate will certify, so the governance proof is taken now or never.
    mutating func noteBoundary() {
        do { try epochProofs.record(state.proveGovernance()) } catch { epochProofWriteFailures += 1 }
    }

    /// The proof that epoch `from` ended and how the next began, for each epoch from `from`
    /// on whose boundary this replica executed and whose checkpoint is certified in its log,
    /// in order, stopping at the first it cannot prove.
    func epochProofs(from: UInt64, max: Int) -> [EpochProof] {
        let ends = state.governance.epochEnds
        guard from < UInt64(ends.count) else { return [] }
        var found: [EpochProof] = []
        for index in Int(from)..<ends.count {
            guard found.count < max, let governance = epochProofs.proofs[UInt64(index) + 1],
                  let certificate = blockLog.executionCertificate(at: ends[index]) else { break }
            found.append(EpochProof(certificate: certificate, governance: governance))
        }
        return found
    }

    /// A block fetched from elsewhere (state transfer, a joining replica): checked against the
    /// configuration in force at its height — the state after the blocks before it says which,
    /// so every epoch change is followed — then stored and executed. Nothing unverified is
    /// stored. Throws `LedgerError` for a block that fails a check.
    mutating func appendVerified(_ entry: LedgerEntry, verifier: SignatureVerifier) throws -> ExecutedCheckpoint? {
        let governance = state.governance
        _ = try tip.verifyNext(entry, config: governance.config, epoch: governance.epoch, verifier: verifier)
        try blockLog.append(entry)
        return try apply(entry).checkpoint
    }

    /// The replies the state's deduplication table still holds for `block`'s requests, which
    /// executed earlier (the answer a retransmission of each would get).
    func repliesRecorded(for block: Block) -> [Reply] {
        block.requests.compactMap { request in
            guard let reply = state.lastReply(of: request.client), reply.requestID == request.requestID,
                  reply.height == block.height else { return nil }
            return reply
        }
    }

    /// The state root after the executed checkpoint at `height`, while it is still kept.
    func checkpointRoot(at height: Height) -> Digest? { checkpointStates[height]?.stateRoot }

    /// Makes the executed checkpoint `certificate` certifies the one proofs are read from, and
    /// forgets the executed checkpoints at or below it.
    mutating func certify(_ certificate: ExecutionCertificate) {
        guard certificate.height > certified?.state.height ?? 0 else { return }
        if let provable = checkpointStates[certificate.height], provable.stateRoot == certificate.stateRoot {
            certified = (provable, certificate)
        }
        checkpointStates = checkpointStates.filter { $0.key > certificate.height }
    }
}

/// What start-up recovers from a data directory, for the shell and its core.
struct RecoveredLedger {
    var ledger: LedgerExecution
    /// The newest stable checkpoint stored in the ledger, with what its proof needs.
    var checkpoint: CheckpointProof?
    /// Checkpoint heights above it that the ledger holds, with their state.
    var executed: [ExecutedCheckpoint]
    var snapshotHeight: Height?
}

extension LedgerExecution {
    /// Opens the block log and key history in `directory`, restores the newest usable state
    /// snapshot and replays the blocks after it: the one replay, for every driver. A block
    /// that fails its checks when read (a sector that rotted in a segment opened from its
    /// index) is damage like any other: the log is cut there, and recovery starts over on the
    /// shorter ledger, which state transfer then completes.
    static func recover(directory: String, fileSystem: any FileSystem, genesis: ClusterConfig,
                        snapshotInterval: Height, segmentBytesMax: UInt64, logger: Logger) throws -> RecoveredLedger {
        for _ in 0..<3 {
            do {
                return try recoverOnce(directory: directory, fileSystem: fileSystem, genesis: genesis,
                                       snapshotInterval: snapshotInterval, segmentBytesMax: segmentBytesMax, logger: logger)
            } catch let found as DamagedBlock {
                logger.error("block log damaged; cutting it there and repairing from peers",
                             metadata: ["height": "\(found.damage.height)", "reason": "\(found.damage.reason)"])
                do { try found.log.cut(at: found.damage) } catch {
                    throw NodeStartupError("\(found.damage), and the log cannot be cut there: \(error)")
                }
            }
        }
        throw NodeStartupError("the block log in \(directory) keeps showing damage after being cut; check the disk")
    }

    /// A block that failed its checks during replay. Thrown and caught on the one thread
    /// that recovers, never sent elsewhere.
    struct DamagedBlock: Error, @unchecked Sendable {
        let damage: LogDamage
        let log: BlockLog
    }

    static func recoverOnce(directory: String, fileSystem: any FileSystem, genesis: ClusterConfig,
                            snapshotInterval: Height, segmentBytesMax: UInt64, logger: Logger) throws -> RecoveredLedger {
        let blockLog: BlockLog, history: FileKeyHistory, epochProofs: EpochProofLog
        do {
            try fileSystem.createDirectory(directory)
            blockLog = try BlockLog(directory: directory + "/blocks", fileSystem: fileSystem, segmentBytesMax: segmentBytesMax)
            if let damage = blockLog.damage {
                logger.error("block log damaged; serving up to the block before it and repairing from peers",
                             metadata: ["height": "\(damage.height)", "reason": "\(damage.reason)"])
                try blockLog.truncateDamage()
            }
            // Any epoch may raise the value limit, up to the codec's.
            history = try FileKeyHistory(path: directory + "/key-history.log", valueBytesMax: CodecLimits.valueBytesMax,
                                         fileSystem: fileSystem)
            epochProofs = try EpochProofLog(path: directory + "/epochs.log", fileSystem: fileSystem)
        } catch {
            throw NodeStartupError("cannot open the data directory \(directory): \(error)")
        }
        let snapshotDirectory = directory + "/snapshots"
        let restored = StateSnapshots.load(directory: snapshotDirectory, fileSystem: fileSystem, blockLog: blockLog,
                                           cluster: genesis.clusterID, history: history, logger: logger)
        do {
            // Entries past the restored state's are rewritten by the replay below.
            try history.truncate(to: restored?.state.historyEnd ?? 0)
        } catch {
            throw NodeStartupError("cannot trim the key history file in \(directory): \(error)")
        }
        var ledger = LedgerExecution(
            blockLog: blockLog, history: history,
            state: restored?.state ?? KeyValueState(genesis: genesis, history: history), tip: restored?.tip ?? .genesis,
            snapshots: StateSnapshots(directory: snapshotDirectory, requested: snapshotInterval,
                                      checkpointInterval: genesis.parameters.checkpointInterval, lastBytes: restored?.bytes ?? 0),
            epochProofs: epochProofs)
        let latest = blockLog.latestExecutionCertificate
        var checkpoint: CheckpointProof?
        if let restored {
            ledger.checkpointStates[restored.tip.height] = ledger.state.provable
            if restored.certificate == latest {
                checkpoint = CheckpointProof(certificate: restored.certificate, header: restored.entry.block.header,
                                             historyBefore: restored.tipBefore.history)
            }
        }
        // Nothing else holds the state while it replays, so it is never copied.
        var executed: [ExecutedCheckpoint] = []
        try ledger.replay(latest: latest, checkpoint: &checkpoint, executed: &executed)
        return RecoveredLedger(ledger: ledger, checkpoint: checkpoint, executed: executed,
                               snapshotHeight: restored?.entry.block.height)
    }

    /// Executes every block of the log after the restored state, noting the proof of the
    /// newest stored checkpoint and the executed checkpoints above it.
    private mutating func replay(latest: ExecutionCertificate?, checkpoint proof: inout CheckpointProof?,
                                 executed: inout [ExecutedCheckpoint]) throws {
        for height in stride(from: tip.height + 1, through: blockLog.height, by: 1) {
            let entry: LedgerEntry
            do { entry = try blockLog.entry(at: height) } catch {
                if case .corrupt = error { throw DamagedBlock(damage: blockLog.damage(at: height, reason: "\(error)"), log: blockLog) }
                throw NodeStartupError("cannot read block \(height) of the block log: \(error)")
            }
            let historyBefore = tip.history
            let checkpoint: ExecutedCheckpoint?
            do { checkpoint = try apply(entry).checkpoint } catch {
                throw NodeStartupError("cannot replay block \(height): \(error)")
            }
            if let latest, latest.height == height {
                proof = CheckpointProof(certificate: latest, header: entry.block.header, historyBefore: historyBefore)
            }
            if let checkpoint, height > latest?.height ?? 0 { executed.append(checkpoint) }
        }
        do { try history.flush() } catch {
            throw NodeStartupError("cannot write the key history file: \(error)")
        }
    }
}
