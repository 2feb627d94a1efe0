import BulwarkCore

/// Checkpoints, watermarks and garbage collection (TOCS §4.3), state-transfer requests, and
/// retransmission.
extension Replica {
    mutating func receiveCheckpoint(_ checkpoint: Checkpoint) {
        let height = checkpoint.height
        if height <= lowWatermark, height % parameters.checkpointInterval == 0 { return reject(.lateCheckpoint) }
        guard height <= highWatermark, height % parameters.checkpointInterval == 0 else {
            // Far-ahead checkpoints are not buffered; a lagging replica learns of them from
            // re-announced checkpoint proofs instead.
            return reject(.outsideWatermarks)
        }
        if let existing = checkpointVotes[height]?[checkpoint.replica] {
            if existing != checkpoint { reject(.equivocation) }
            return
        }
        guard isSigned(by: checkpoint.replica, checkpoint.signature, checkpoint.signedBytes(cluster)) else {
            return reject(.badSignature)
        }
        notePeerHeight(checkpoint.replica, height)
        checkpointVotes[height, default: [:]][checkpoint.replica] = checkpoint
        checkStable(height)
    }

    /// A checkpoint becomes stable when a quorum signed the same (blockHash, stateRoot).
    /// Votes are grouped by content, so a forged or lying checkpoint never joins a quorum it
    /// does not match (PITFALLS: forged checkpoint).
    mutating func checkStable(_ height: Height) {
        guard height > lowWatermark, let votes = checkpointVotes[height] else { return }
        let senders = votes.keys.sorted()
        for candidate in senders {
            let reference = votes[candidate]!
            let matching = senders.compactMap { votes[$0] }.filter {
                $0.blockHash == reference.blockHash && $0.stateRoot == reference.stateRoot
            }
            guard matching.count >= quorum else { continue }
            let certificate = ExecutionCertificate(
                height: height, blockHash: reference.blockHash, stateRoot: reference.stateRoot,
                votes: matching.map { Vote(replica: $0.replica, signature: $0.signature) })
            // Not yet executed here: decided again when `executed` arrives, or, for a replica
            // that fell behind, by the checkpoint proofs other replicas re-announce.
            guard height <= lastExecuted, let block = delivered[height], let own = ownExecution(at: height) else { return }
            guard own.blockHash == reference.blockHash && own.stateRoot == reference.stateRoot else {
                emit(.fault("at height \(height) this replica's state root \(own.stateRoot.short) disagrees with a quorum's \(reference.stateRoot.short)"))
                return
            }
            makeStable(CheckpointProof(certificate: certificate, header: block.header, historyBefore: block.historyBefore))
            return
        }
    }

    /// What this replica's own execution gave at checkpoint height `height`, signed or (below a
    /// signing floor) not, while it still knows it.
    func ownExecution(at height: Height) -> (blockHash: Digest, stateRoot: Digest)? {
        ownCheckpoints[height].map { ($0.blockHash, $0.stateRoot) } ?? unsignedCheckpoints[height]
    }

    /// Advances the low watermark and discards protocol state at or below it. The ledger
    /// itself is kept by the shell: it is the product.
    mutating func makeStable(_ proof: CheckpointProof) {
        guard proof.height > lowWatermark else { return }
        stable = proof
        let low = proof.height
        for height in slots.keys where height <= low { slots[height] = nil }
        for height in waitingPrePrepares.keys where height <= low { waitingPrePrepares[height] = nil }
        for height in preparedCertificates.keys where height <= low { preparedCertificates[height] = nil }
        bodies.prune(through: low)
        for height in checkpointVotes.keys where height <= low { checkpointVotes[height] = nil }
        for height in ownCheckpoints.keys where height <= low { ownCheckpoints[height] = nil }
        for height in unsignedCheckpoints.keys where height <= low { unsignedCheckpoints[height] = nil }
        for height in votedInView.keys where height <= low { votedInView[height] = nil }
        for height in delivered.keys where height <= low { delivered[height] = nil }
        if nextProposal <= low { nextProposal = low + 1 }
        emit(.checkpointStable(proof))
        proposeBatches(flush: false)
    }

    /// A stable checkpoint re-announced by some replica. Trusted only after checking the
    /// certificate and that header and history match it.
    mutating func receiveCheckpointProof(_ proof: CheckpointProof) {
        guard proof.height > lowWatermark, proof.height % parameters.checkpointInterval == 0 else { return }
        guard isValid(proof) else { return reject(.invalidCheckpoint) }
        if proof.height <= lastExecuted {
            // We executed it ourselves: where we still know our own result, it must agree.
            if let own = ownExecution(at: proof.height), own.stateRoot != proof.certificate.stateRoot
                || own.blockHash != proof.certificate.blockHash {
                emit(.fault("at height \(proof.height) this replica's state disagrees with a certified checkpoint"))
                return
            }
            makeStable(proof)
        } else if proof.height > chain.height {
            requestStateTransfer(proof)
        }
    }

    /// A checkpoint proof is valid when its certificate holds a quorum of valid signatures and
    /// the header and history are the ones it certifies.
    func isValid(_ proof: CheckpointProof) -> Bool {
        guard proof.isInProtocolRange, proof.header.hash == proof.certificate.blockHash,
              proof.header.height == proof.height, proof.header.clusterID == cluster,
              proof.historyBefore.size == proof.height - 1,
              proof.historyBefore.root == proof.header.historyRoot else { return false }
        return (try? proof.certificate.verify(config: config, verifier: verifier)) != nil
    }

    mutating func requestStateTransfer(_ proof: CheckpointProof) {
        requestStateTransfer(height: proof.height, checkpoint: proof)
    }

    mutating func requestStateTransfer(height: Height, checkpoint: CheckpointProof?) {
        if let target = stateTransferTarget, target >= height { return }
        stateTransferTarget = height
        emit(.requestStateTransfer(height: height, checkpoint: checkpoint))
    }

    /// Another replica committed beyond our chain. Blocks are self-certifying, so a valid
    /// commit certificate above us is reason enough to fetch the missing blocks; this is how a
    /// replica left alone in a view change, or one that missed the last messages before the
    /// cluster went idle, catches up without waiting for the next checkpoint.
    mutating func receiveCommitProof(_ proof: CommitProof) {
        guard proof.height > chain.height, proof.height > (stateTransferTarget ?? 0) else { return }
        guard proof.header.height == proof.height, proof.header.clusterID == cluster,
              proof.header.hash == proof.certificate.blockHash,
              (try? proof.certificate.verify(config: config, verifier: verifier)) != nil
        else { return reject(.invalidCheckpoint) }
        requestStateTransfer(height: proof.height, checkpoint: nil)
    }

    /// The shell fetched and verified blocks up to `tip` and executed them.
    mutating func stateTransferred(tip: ChainTip, checkpoint: CheckpointProof?, executed: [ExecutedCheckpoint],
                                   clients: ExecutedClients) {
        if let target = stateTransferTarget, tip.height >= target { stateTransferTarget = nil }
        guard tip.height > chain.height else { return }
        chain = tip
        lastExecuted = tip.height
        executedClients = clients
        awaitingExecution.removeAll()
        pool.removeExecuted(by: executedClients)
        if let checkpoint, checkpoint.height > lowWatermark, checkpoint.height <= tip.height { makeStable(checkpoint) }
        adoptExecuted(executed)
        // Slots at or below the new tip are done; drop them so delivery resumes above.
        for height in slots.keys where height <= tip.height { slots[height] = nil }
        for height in waitingPrePrepares.keys where height <= tip.height { waitingPrePrepares[height] = nil }
        if nextProposal <= tip.height { nextProposal = tip.height + 1 }
        // Pre-prepares above the new tip may now link.
        if let next = waitingPrePrepares.removeValue(forKey: tip.height + 1) { receivePrePrepare(next) }
        deliverCommitted()
        proposeBatches(flush: false)
    }

    // MARK: Retransmission

    /// Messages are lost; PBFT assumes retransmission (TOCS §4.1). Each replica periodically
    /// re-sends what it already signed — never anything new, so this cannot equivocate.
    /// A backup relays to the primary the requests that waited a whole retransmit interval
    /// here without appearing in a pre-prepare, once per view, so a client that reached only
    /// some replicas is still served (PBFT §4.1). Not at once: clients send every request to
    /// every replica, so relaying each on arrival would only send the primary three more copies.
    mutating func relayWaitingRequests() {
        guard !isPrimary, !isChangingView, nowMs >= retransmitIntervalMs else { return }
        for request in pool.takeUnrelayed(arrivedBy: nowMs - retransmitIntervalMs, maxCount: parameters.batchRequestsMax) {
            emit(.send(.request(request), to: primary))
        }
    }

    mutating func retransmit() {
        if let stable, stable.height > 0 { emit(.broadcast(.checkpointProof(stable))) }
        for height in ownCheckpoints.keys.sorted() where height > lowWatermark {
            emit(.broadcast(.checkpoint(ownCheckpoints[height]!)))
        }
        if isChangingView {
            if let vc = ownViewChange { emit(.broadcast(.viewChange(vc))) }
            return
        }
        if isPrimary, let nv = newViewMessage { emit(.broadcast(.newView(nv))) }
        relayWaitingRequests()
        // Slot messages only when delivery stalled since the last round: while blocks flow,
        // the protocol's own messages are enough.
        let stalled = chain.height == heightAtLastRetransmit
        heightAtLastRetransmit = chain.height
        guard stalled else { return }
        if let proof = lastCommitProof, proof.height == chain.height { emit(.broadcast(.commitProof(proof))) }
        for height in slots.keys.sorted() {
            let slot = slots[height]!
            if isPrimary, let pp = slot.prePrepare { emit(.broadcast(.prePrepare(pp))) }
            if let prepare = slot.prepares[id] { emit(.broadcast(.prepare(prepare))) }
            if let commit = slot.commits[id] { emit(.broadcast(.commit(commit))) }
        }
    }
}
