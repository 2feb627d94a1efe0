import BulwarkConsensus
import BulwarkCore
import BulwarkStorage

/// Configuration epochs (SPEC.md §18.4): the shell tells its core when the executed ledger
/// schedules the end of its epoch, and once the core's last block is executed and its
/// checkpoint stable, replaces the core with one for the next epoch's configuration. A core
/// serves one epoch; no message, vote or timer crosses the boundary.
extension ReplicaShell {
    /// The write-ahead log of one epoch's core: a new epoch starts a new file, so nothing a
    /// core signed in one epoch is restored into another.
    static func journalPath(dataDirectory: String, epoch: UInt64) -> String {
        epoch == 0 ? dataDirectory + "/consensus.wal" : dataDirectory + "/consensus-epoch-\(epoch).wal"
    }

    /// Removes the write-ahead logs of epochs before `epoch` (left by a crash at a boundary).
    static func removeOldJournals(dataDirectory: String, epoch: UInt64, fileSystem: any FileSystem) {
        guard epoch > 0, let names = try? fileSystem.list(dataDirectory) else { return }
        let current = journalPath(dataDirectory: dataDirectory, epoch: epoch).split(separator: "/").last.map(String.init)
        for name in names where (name == "consensus.wal" || name.hasPrefix("consensus-epoch-")) && name != current {
            try? fileSystem.remove(dataDirectory + "/" + name)
        }
    }

    /// The id under which `key` votes in the epoch `governance` is in; else why it cannot, in
    /// one sentence (the id it had in cluster.json, or `expected`, tells which replica it was).
    static func identify(key: PrivateKey, expected: ReplicaID?, genesis: ClusterConfig,
                         governance: Governance) throws -> ReplicaID {
        let config = governance.config
        if let id = config.replicaID(of: key.publicKey), expected == nil || expected == id { return id }
        guard let former = expected ?? genesis.replicaID(of: key.publicKey) else {
            throw NodeStartupError(governance.epoch == 0
                ? "the key \(key.publicKey.short)… is not a validator of the cluster"
                : "the key \(key.publicKey.short)… is not a validator of epoch \(governance.epoch), the epoch this replica's ledger reached")
        }
        if let problem = membershipProblem(id: former, key: key, config: config, epoch: governance.epoch,
                                           since: governance.firstHeight) {
            throw NodeStartupError(governance.epoch == 0
                ? "the key file's public key is not validator \(former)'s in the cluster configuration"
                : problem)
        }
        return former
    }

    /// Why replica `id` with `key` cannot vote under `config` (epoch `epoch`), if it cannot.
    static func membershipProblem(id: ReplicaID, key: PrivateKey, config: ClusterConfig, epoch: UInt64,
                                  since firstHeight: Height) -> String? {
        guard let validator = config.validator(id) else {
            return "replica \(id) is not a validator of epoch \(epoch) (from height \(firstHeight)): it was removed from the cluster"
        }
        guard validator.publicKey == key.publicKey else {
            return "replica \(id)'s key was replaced in epoch \(epoch) (from height \(firstHeight)): start it with its new key file, not key \(key.publicKey.short)…"
        }
        return nil
    }

    /// The chain position after block `height` of the log (an epoch's base), rebuilt from the
    /// block hashes the log holds.
    func tip(after height: Height) throws -> ChainTip { try Self.tip(after: height, in: ledger) }

    static func tip(after height: Height, in ledger: LedgerExecution) throws -> ChainTip {
        if height == 0 { return .genesis }
        if height == ledger.tip.height { return ledger.tip }
        var history = MerkleAccumulator()
        for h in stride(from: 1, through: height, by: 1) {
            guard let hash = ledger.blockLog.blockHash(at: h) else { throw NodeStartupError("block \(h) is missing from the ledger") }
            history.append(leafHash: MerkleTree.leafHash(hash))
        }
        let header = try ledger.blockLog.entry(at: height).block.header
        return ChainTip(height: height, blockHash: header.hash, timestampMs: header.timestampMs, history: history)
    }

    /// After every step: tell the core of a scheduled end, and move to the next epoch when
    /// the core's last block is executed and stable.
    func followEpochs() {
        guard !stopped, faulted == nil else { return }
        let governance = ledger.state.governance
        if governance.epoch == core.epoch, let scheduled = governance.scheduled, core.epochLastHeight == nil {
            logger.info("configuration change approved", metadata: [
                "epoch": "\(core.epoch)", "last-height": "\(scheduled.lastHeight)", "proposal": "\(scheduled.id.short)"])
            process(core.step(.epochEnds(lastHeight: scheduled.lastHeight), nowMs: clock.nowMs))
            return
        }
        guard governance.epoch > core.epoch, let last = governance.epochEnds.last, core.lowWatermark >= last else { return }
        // The core never orders past its epoch and a transfer never past its checkpoint, so
        // the ledger ends exactly at the boundary, one epoch on.
        guard governance.epoch == core.epoch + 1, ledger.tip.height == last else {
            return fault("the ledger is at height \(ledger.tip.height) in epoch \(governance.epoch), but the core still serves epoch \(core.epoch)")
        }
        enterEpoch(governance)
    }

    func enterEpoch(_ governance: Governance) {
        let config = governance.config
        if let problem = Self.membershipProblem(id: id, key: key, config: config, epoch: governance.epoch,
                                                since: governance.firstHeight) {
            return retire(problem)
        }
        let previous = core
        let floor = journal.signingFloor
        do {
            let path = Self.journalPath(dataDirectory: dataDirectory, epoch: governance.epoch)
            journal = try ConsensusJournal(path: path, fileSystem: fileSystem, cluster: config.clusterID, key: key.publicKey)
            try journal.claim()
            // A signing floor above the boundary still binds the new epoch's heights.
            if let floor, floor.height > ledger.tip.height { try journal.setFloor(floor) }
            Self.removeOldJournals(dataDirectory: dataDirectory, epoch: governance.epoch, fileSystem: fileSystem)
        } catch {
            return fault("cannot start the write-ahead log of epoch \(governance.epoch): \(error)")
        }
        core = Replica(config: config, id: id, key: key, verifier: verifier, executedClients: ExecutedClients(ledger.state),
                       epoch: governance.epoch, epochBase: ledger.tip, epochLastHeight: governance.scheduled?.lastHeight,
                       signingFloor: journal.signingFloor)
        network.configure(config)
        raiseFloorByLaterEpochClaims()
        guard faulted == nil else { return }
        logger.info("entered epoch", metadata: [
            "epoch": "\(governance.epoch)", "height": "\(ledger.tip.height)", "replicas": "\(config.n)",
            "config": "\(config.hash.short)"])
        notify(.enteredEpoch(governance.epoch, firstHeight: governance.firstHeight))
        process(core.start(nowMs: clock.nowMs))
        // Requests the old epoch had not ordered are proposed again in this one.
        for request in previous.pendingRequests { process(core.step(.clientRequest(request), nowMs: clock.nowMs)) }
    }

    /// Stops for good because this replica is no longer a validator (removed, or its key
    /// replaced): not a fault, so a supervisor does not restart it.
    func retire(_ reason: String) {
        guard retired == nil else { return }
        retired = reason
        logger.notice("stopping: \(reason)")
        stop()
        onRetire?(reason)
    }

    /// A consensus message from another epoch. A peer still in an earlier epoch is sent the
    /// stable checkpoint that ended it (certified by that epoch's own validators), so it can
    /// catch up to the boundary and follow; a message from a later epoch means this replica is
    /// behind, and the peers it hears from will send it the same.
    func otherEpoch(_ message: Message, epoch: UInt64, from peer: ReplicaID) {
        notify(.dropped(.otherEpoch))
        guard epoch < core.epoch, epochHints.allow(peer, nowMs: clock.nowMs) else { return }
        let governance = ledger.state.governance
        guard Int(epoch) < governance.epochEnds.count else { return }
        let last = governance.epochEnds[Int(epoch)]
        guard let proof = boundaryProof(at: last) else { return }
        network.send(PeerFrame.consensus(epoch: epoch, .checkpointProof(proof)).encoded(), to: peer, afterMs: 0)
    }

    /// The stable checkpoint at `height`, the last block of an earlier epoch, as the ledger
    /// holds it; cached, since every laggard asks for the same few.
    func boundaryProof(at height: Height) -> CheckpointProof? {
        if let cached = boundaryProofs[height] { return cached }
        guard let certificate = ledger.blockLog.executionCertificate(at: height),
              let header = try? ledger.blockLog.entry(at: height).block.header,
              let before = try? tip(after: height - 1) else { return nil }
        let proof = CheckpointProof(certificate: certificate, header: header, historyBefore: before.history)
        if boundaryProofs.count >= 16 { boundaryProofs.removeAll() }
        boundaryProofs[height] = proof
        return proof
    }
}
