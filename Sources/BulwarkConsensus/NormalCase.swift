import BulwarkCore

/// PBFT normal-case operation (TOCS §4.2–4.3) and client handling.
extension Replica {
    // MARK: Requests

    mutating func receiveRequest(_ request: Request, fromClient: Bool) {
        if let last = executedClients.lastRequestID(of: request.client) {
            if request.requestID == last {
                // PBFT §4.1: a retransmitted request that already executed gets the cached reply.
                if fromClient { emit(.replyAgain(client: request.client, requestID: last)) }
                return
            }
            if request.requestID < last {
                reject(.staleRequest)
                return
            }
        }
        let key = RequestPool.Key(client: request.client, requestID: request.requestID)
        if pool.contains(key) || awaitingExecution.contains(key) { return }
        let bytes = request.encoded().count
        func refuse(_ reason: RejectReason, _ refusal: RequestRefusal) {
            reject(reason)
            if fromClient { emit(.refuse(client: request.client, requestID: request.requestID, refusal)) }
        }
        guard bytes <= parameters.requestBytesMax else {
            return refuse(.oversized, .tooLarge(bytes: UInt64(bytes), limit: UInt64(parameters.requestBytesMax)))
        }
        guard verifier.isValid(request.signature, by: request.client, for: requestSignedBytes(request)) else {
            return refuse(.invalidRequest, .badSignature)
        }
        // The client link refuses strangers in the shell; a peer relaying one is refused here.
        guard executedClients.admits(request.client) else { return refuse(.unknownClient, .unknownClient) }
        switch pool.add(request, bytes: bytes, nowMs: nowMs) {
        case .added: break
        case .duplicate: return
        case .full, .clientFull: return refuse(.poolFull, .rateLimited)
        }
        armRequestTimer()
        proposeBatches(flush: false)
    }

    func requestSignedBytes(_ request: Request) -> [UInt8] { request.signedBytes(cluster: cluster) }

    /// What the request timer waits on: the oldest pending request, or the blocks still
    /// missing before a scheduled epoch end (an idle cluster must still reach the boundary).
    var oldestWaitMs: UInt64? {
        let epochWait = (epochLastHeight.map { chain.height < $0 } ?? false) ? epochEndWaitSinceMs : nil
        switch (pool.oldestArrivalMs, epochWait) {
        case let (a?, b?): return min(a, b)
        case let (a, b): return a ?? b
        }
    }

    /// Arms PBFT's request timer for the oldest pending request, if none is armed.
    mutating func armRequestTimer() {
        guard !requestTimerArmed, !isChangingView, let oldest = oldestWaitMs else { return }
        requestTimerGeneration += 1
        requestTimerArmed = true
        let deadline = oldest + viewChangeTimeoutMs
        emit(.setTimer(.request(generation: requestTimerGeneration), afterMs: deadline > nowMs ? deadline - nowMs : 0))
    }

    /// The timer tracks the oldest pending request rather than any progress, so a primary that
    /// orders other clients' requests but censors one is still replaced.
    mutating func requestTimerExpired() {
        guard !isChangingView, let oldest = oldestWaitMs else { return }
        if nowMs >= oldest + viewChangeTimeoutMs {
            startViewChange(to: view + 1)
        } else {
            armRequestTimer()
        }
    }

    // MARK: Proposing (primary)

    /// Proposes full batches at once. A partial batch waits while `blocksInFlightMax` blocks
    /// are proposed and not yet committed; below that it goes at once when nothing is in
    /// flight (an idle cluster answers without the batch delay) or with `flush` (the batch
    /// delay ran out, or a block just executed and opened the window).
    ///
    /// Before a scheduled epoch end the primary fills idle time with null blocks, so the
    /// boundary arrives whether or not clients write.
    mutating func proposeBatches(flush: Bool) {
        guard isPrimary, !isChangingView, stateTransferTarget == nil, !proposalsHeld else { return }
        while nextProposal <= highWatermark, maySign(height: nextProposal), votedInView[nextProposal] == nil, pool.unproposedCount > 0 || nextProposal <= epochLastHeight ?? 0 {
            let batch = pool.unproposed(maxCount: parameters.batchRequestsMax, maxBytes: parameters.batchBytesMax)
            let full = batch.count >= parameters.batchRequestsMax
                || batch.reduce(0, { $0 + $1.bytes }) >= parameters.batchBytesMax
            let inFlight = nextProposal > chain.height ? nextProposal - 1 - chain.height : 0
            guard full || inFlight < parameters.blocksInFlightMax else { return }
            // A null block toward the epoch's end goes as soon as the window allows.
            let flush = flush || batch.isEmpty
            guard full || flush || inFlight == 0 else {
                if !batchTimerArmed {
                    batchTimerArmed = true
                    emit(.setTimer(.batch, afterMs: parameters.batchDelayMs))
                }
                return
            }
            guard let predecessor = predecessorTip(of: nextProposal) else { return }
            // A key unbound since its request arrived is not proposed: backups would refuse
            // the block (SPEC.md §19.4).
            let strangers = batch.filter { !executedClients.admits($0.request.client) }
            if !strangers.isEmpty {
                for entry in strangers { pool.remove(RequestPool.Key(client: entry.request.client, requestID: entry.request.requestID)) }
                continue
            }
            let requests = batch.map(\.request)
            let header = BlockHeader(
                clusterID: cluster, epoch: epoch, height: nextProposal, view: view,
                timestampMs: max(nowMs, predecessor.timestampMs), proposer: id,
                prevBlockHash: predecessor.blockHash, txRoot: Block.txRoot(of: requests, cluster: cluster),
                historyRoot: predecessor.history.root)
            let pp = PrePrepare.signed(view: view, block: Block(header: header, requests: requests), by: key, replica: id,
                                       cluster: cluster)
            pool.markProposed(requests, nowMs: nowMs)
            votedInView[pp.height] = pp.blockHash
            nextProposal += 1
            persist(.sent(.prePrepare(pp)))
            emit(.broadcast(.prePrepare(pp)))
            install(pp, tipAfter: predecessor.appending(header, hash: pp.blockHash))
        }
    }

    /// The chain position a block at `height` must link to, if known.
    func predecessorTip(of height: Height) -> ChainTip? {
        height == chain.height + 1 ? chain : slots[height - 1]?.tipAfter
    }

    // MARK: Pre-prepare

    mutating func receivePrePrepare(_ pp: PrePrepare) {
        guard pp.replica == config.primary(of: pp.view) else { return reject(.notFromPrimary) }
        guard pp.view == view, !isChangingView else { return reject(.wrongView) }
        let height = pp.height
        guard height > lowWatermark, height <= highWatermark else { return reject(.outsideWatermarks) }
        // Already delivered here (a retransmission reaching a replica that caught up).
        guard height > chain.height else { return }
        if let existing = slots[height]?.proposal {
            if existing.blockHash != pp.blockHash { return reject(.conflictingPrePrepare) }
            // A NEW-VIEW installed this proposal by header: the primary's PRE-PREPARE brings
            // the body. The hash binds the header and the header's txRoot binds the requests;
            // a quorum prepared this block before, so its requests were checked then.
            if slots[height]?.body == nil {
                guard pp.block.hasConsistentTxRoot() else { return reject(.invalidBatch) }
                attachBody(pp.block)
            }
            return
        }
        if let waiting = waitingPrePrepares[height], waiting.blockHash == pp.blockHash { return }
        guard isSigned(by: pp.replica, pp.signature, pp.signedBytes(cluster)) else { return reject(.badSignature) }
        if let own = slots[height]?.ownPrepare, own.blockHash != pp.blockHash {
            // Restored from the write-ahead log: this replica already prepared another block here.
            return reject(.conflictingPrePrepare)
        }
        guard let predecessor = predecessorTip(of: height) else {
            // Out of order: keep it until the pre-prepare below it arrives (bounded: one per height).
            waitingPrePrepares[height] = pp
            return
        }
        if let problem = proposalProblem(pp, after: predecessor) { return reject(problem) }
        if pp.block.requests.contains(where: { !executedClients.admits($0.client) }) {
            // Judged by the policy the block will execute under: once the block below it has
            // executed here, every honest replica decides alike. Until then it waits (a key
            // bound by that block is not yet known here).
            guard lastExecuted >= height - 1 else {
                waitingPrePrepares[height] = pp
                return
            }
            return reject(.unknownClient)
        }
        install(pp, tipAfter: predecessor.appending(pp.block.header, hash: pp.blockHash))
        slots[height]!.acceptedMs = nowMs
        if judgeTurnaround(of: pp) { return }
        sendPrepare(for: height)
        advance(height)
        // The next height may have been waiting for this one.
        if let next = waitingPrePrepares.removeValue(forKey: height + 1) { receivePrePrepare(next) }
    }

    /// Samples how long the requests in an accepted proposal waited for it; true when the
    /// primary has been too slow and this replica asked for a view change.
    ///
    /// A request's wait counts from when the primary could have proposed it: its arrival, or
    /// the execution here of the block below, whichever is later. Under load requests queue
    /// behind full blocks in flight (with values near `valueBytesMax` a closed-loop client waits
    /// through two or three), which is the pipeline's doing, not the primary's: counted from
    /// arrival, an honest primary looked slow and the backups changed views every few seconds.
    mutating func judgeTurnaround(of pp: PrePrepare) -> Bool {
        let since = lastExecutionMs.flatMap { $0.height + 1 == pp.height ? $0.atMs : nil } ?? 0
        let waits = pool.markProposed(pp.block.requests, nowMs: nowMs, since: since)
        // Near the high watermark the primary may be waiting for a checkpoint, not stalling.
        guard pp.height <= highWatermark - parameters.checkpointInterval else { return false }
        for wait in waits {
            guard let verdict = turnaround.recordTurnaround(wait, batchDelayMs: parameters.batchDelayMs,
                                                            slackMs: parameters.turnaroundSlackMs) else { continue }
            switch verdict {
            case let .tooSlow(mean, allowed):
                emit(.suspectedPrimary(view: view, primary: primary, meanTurnaroundMs: mean, allowedMs: allowed))
                startViewChange(to: view + 1)
                return true
            }
        }
        return false
    }

    /// The acceptance rules for a normal-case proposal (ARCHITECTURE.md §3): nil if it passes.
    func proposalProblem(_ pp: PrePrepare, after predecessor: ChainTip) -> RejectReason? {
        let header = pp.block.header
        guard header.clusterID == cluster, header.epoch == epoch, header.view == pp.view, header.proposer == pp.replica,
              predecessor.isLinked(to: header) else { return .invalidBlock }
        // The proposer's clock may differ from ours, but not by more than the bound. Only our
        // own clock and the configured bound take part in arithmetic, never the timestamp the
        // proposer chose (which the first comparison alone would not keep from overflowing).
        let skew = parameters.timestampSkewMsMax
        guard header.timestampMs <= nowMs + skew, nowMs <= skew || header.timestampMs >= nowMs - skew else {
            return .badTimestamp
        }
        return hasValidRequests(pp.block) ? nil : .invalidBatch
    }

    /// Every request well formed, within limits, signed by its client, none twice, and the
    /// header's `txRoot` over exactly these requests. Backups re-verify client signatures
    /// (PITFALLS: mangled requests with a recomputed digest), each request's signature at 2f+1
    /// of the 3f+1 validators (`ClusterConfig.verifiesInProposal`, SPEC.md §14.1): enough that
    /// every quorum that prepares a block holds an honest replica that verified each of them.
    func hasValidRequests(_ block: Block) -> Bool {
        guard block.requests.count <= parameters.batchRequestsMax else { return false }
        var seen = Set<RequestPool.Key>()
        for request in block.requests {
            guard seen.insert(RequestPool.Key(client: request.client, requestID: request.requestID)).inserted,
                  request.encoded().count <= parameters.requestBytesMax,
                  !config.verifiesInProposal(request, replica: id)
                    || verifier.isValid(request.signature, by: request.client, for: requestSignedBytes(request))
            else { return false }
        }
        return block.hasConsistentTxRoot()
    }

    /// Puts an accepted pre-prepare into its slot.
    mutating func install(_ pp: PrePrepare, tipAfter: ChainTip) {
        install(pp.proposal, body: pp.block, tipAfter: tipAfter)
    }

    /// Puts an accepted proposal into its slot, with its body when known.
    mutating func install(_ proposal: Proposal, body: Block?, tipAfter: ChainTip) {
        var slot = slots[proposal.height] ?? Slot()
        slot.proposal = proposal
        slot.body = body
        slot.tipAfter = tipAfter
        slots[proposal.height] = slot
        waitingPrePrepares[proposal.height] = nil
        if let body { bodies.add(body, keep: preparedCertificates[proposal.height]?.proposal.blockHash) }
    }

    /// The body of a slot's proposal arrived: keep it and deliver what it held up.
    mutating func attachBody(_ body: Block) {
        guard var slot = slots[body.height], slot.proposal?.header == body.header, slot.body == nil else { return }
        slot.body = body
        slots[body.height] = slot
        bodies.add(body, keep: preparedCertificates[body.height]?.proposal.blockHash)
        deliverCommitted()
    }

    mutating func sendPrepare(for height: Height) {
        guard !isPrimary, let pp = slots[height]?.proposal else { return }
        // Below the signing floor a rejoining replica follows without voting; and it never
        // votes for a block other than the one its log says it voted for here.
        guard slots[height]?.ownPrepare != nil || maySign(height: height) else { return }
        guard votedInView[height].map({ $0 == pp.blockHash }) ?? true else { return }
        let prepare: Prepare
        if let own = slots[height]?.ownPrepare {
            prepare = own  // restored after a restart: send exactly what was sent before
        } else {
            prepare = Prepare.signed(view: view, height: height, blockHash: pp.blockHash, by: key, replica: id, cluster: cluster)
            slots[height]!.ownPrepare = prepare
            votedInView[height] = pp.blockHash
            persist(.sent(.prepare(prepare)))
        }
        slots[height]!.prepares[id] = prepare
        emit(.broadcast(.prepare(prepare)))
    }

    // MARK: Prepare and commit

    mutating func receivePrepare(_ prepare: Prepare) {
        // PITFALLS (sawtooth-pbft #111): the primary's pre-prepare is its prepare; a PREPARE from
        // the primary is never counted.
        guard prepare.replica != config.primary(of: prepare.view) else { return reject(.primaryPrepare) }
        guard prepare.view == view, !isChangingView else { return reject(.wrongView) }
        guard prepare.height > lowWatermark, prepare.height <= highWatermark else { return reject(.outsideWatermarks) }
        if let existing = slots[prepare.height]?.prepares[prepare.replica] {
            if existing.blockHash != prepare.blockHash { reject(.equivocation) }
            return
        }
        guard isSigned(by: prepare.replica, prepare.signature, prepare.signedBytes(cluster)) else { return reject(.badSignature) }
        slots[prepare.height, default: Slot()].prepares[prepare.replica] = prepare
        advance(prepare.height)
    }

    mutating func receiveCommit(_ commit: Commit) {
        guard commit.view == view, !isChangingView else { return reject(.wrongView) }
        guard commit.height > lowWatermark, commit.height <= highWatermark else { return reject(.outsideWatermarks) }
        if let existing = slots[commit.height]?.commits[commit.replica] {
            if existing.blockHash != commit.blockHash { reject(.equivocation) }
            return
        }
        guard isSigned(by: commit.replica, commit.signature, commit.signedBytes(cluster)) else { return reject(.badSignature) }
        notePeerHeight(commit.replica, commit.height)
        slots[commit.height, default: Slot()].commits[commit.replica] = commit
        advance(commit.height)
    }

    /// Moves a slot forward: prepared → send COMMIT → committed → deliver in order.
    mutating func advance(_ height: Height) {
        guard var slot = slots[height], let pp = slot.proposal else { return }
        let primaryID = config.primary(of: view)
        if !slot.prepared {
            // prepared = pre-prepare + quorum−1 matching prepares from distinct backups (TOCS §4.2).
            let matching = slot.prepares.values.filter { $0.blockHash == pp.blockHash && $0.replica != primaryID }
            guard matching.count >= quorum - 1 else { return }
            slot.prepared = true
            if let accepted = slot.acceptedMs { turnaround.recordPrepareExchange(nowMs - accepted) }
            let certificate = PreparedCertificate(
                proposal: pp, prepares: Array(matching.sorted { $0.replica < $1.replica }.prefix(quorum - 1)))
            preparedCertificates[height] = certificate
            if let body = slot.body { bodies.add(body, keep: pp.blockHash) }
            slots[height] = slot
            persist(.prepared(certificate, body: slot.body))
        }
        sendCommitIfReady(height)
        guard var current = slots[height], !current.committed else { return }
        let matching = current.commits.values.filter { $0.blockHash == pp.blockHash }
        // Commits are counted with this replica's own, unless it may not sign one here (a
        // rejoining replica then needs a quorum of the others).
        guard current.ownCommit != nil || !maySign(height: height), matching.count >= quorum else { return }
        current.committed = true
        slots[height] = current
        deliverCommitted()
    }

    /// A replica commits a height only once the height below it is prepared (or delivered), so
    /// that whatever commits has its predecessor locked too and a view change can always
    /// rebuild a linked chain.
    mutating func sendCommitIfReady(_ height: Height) {
        guard let slot = slots[height], slot.prepared, let pp = slot.proposal else { return }
        let predecessorSettled = height - 1 <= chain.height || slots[height - 1]?.prepared == true
        guard predecessorSettled else { return }
        let commit: Commit
        if let own = slot.ownCommit {
            guard own.blockHash == pp.blockHash else { return }
            if slot.commits[id] != nil { return }  // already sent in this life
            commit = own
        } else {
            guard maySign(height: height), votedInView[height].map({ $0 == pp.blockHash }) ?? true else { return }
            commit = Commit.signed(view: view, height: height, blockHash: pp.blockHash, by: key, replica: id, cluster: cluster)
            votedInView[height] = pp.blockHash
            persist(.sent(.commit(commit)))
        }
        slots[height]!.ownCommit = commit
        slots[height]!.commits[id] = commit
        highestCommitSent = max(highestCommitSent, height)
        emit(.broadcast(.commit(commit)))
        // The height above may have been waiting for this one to prepare.
        if slots[height + 1]?.prepared == true { advance(height + 1) }
    }

    /// Hands committed blocks to the shell strictly in height order. A committed slot whose
    /// body never arrived (no honest replica sent it) is fetched with its commit certificate
    /// by state transfer once another replica delivered it.
    mutating func deliverCommitted() {
        if let slot = slots[chain.height + 1], slot.committed, slot.body == nil {
            requestStateTransfer(height: chain.height + 1, checkpoint: nil)
        }
        while let slot = slots[chain.height + 1], slot.committed, let pp = slot.prePrepare {
            let votes = slot.commits.values.filter { $0.blockHash == pp.blockHash }
                .sorted { $0.replica < $1.replica }
                .map { Vote(replica: $0.replica, signature: $0.signature) }
            let certificate = CommitCertificate(height: pp.height, view: view, blockHash: pp.blockHash, votes: votes)
            delivered[pp.height] = DeliveredBlock(header: pp.block.header, hash: pp.blockHash, historyBefore: chain.history)
            lastCommitProof = CommitProof(header: pp.block.header, certificate: certificate)
            chain = chain.appending(pp.block.header, hash: pp.blockHash)
            for request in pp.block.requests {
                let key = RequestPool.Key(client: request.client, requestID: request.requestID)
                pool.remove(key)
                awaitingExecution.insert(key)
            }
            emit(.execute(pp.block, certificate))
            if epochEndWaitSinceMs != nil { epochEndWaitSinceMs = nowMs }
        }
        // Progress resets the request timer to the (new) oldest pending request.
        requestTimerArmed = false
        armRequestTimer()
    }

    // MARK: Execution results

    /// The ledger scheduled a configuration change: this epoch ends with `lastHeight`. Only
    /// the first notice counts (the state schedules at most one change per epoch), and a
    /// boundary at or below what is already ordered cannot be: the ledger never schedules one
    /// closer than a watermark window.
    mutating func epochEnds(lastHeight: Height) {
        guard epochLastHeight == nil, lastHeight >= chain.height, lastHeight >= lowWatermark else { return }
        epochLastHeight = lastHeight
        epochEndWaitSinceMs = nowMs
        armRequestTimer()
        proposeBatches(flush: true)
    }

    mutating func executed(height: Height, stateRoot: Digest?, replies: [Reply], policy: PolicyIndex?) {
        guard height == lastExecuted + 1, height <= chain.height else { return }
        lastExecuted = height
        executedClients.noteExecuted(replies, policy: policy)
        lastExecutionMs = (height, nowMs)
        if lastExecuted == chain.height { awaitingExecution.removeAll() }
        consecutiveViewChanges = 0
        for reply in replies {
            pool.removeExecuted(client: reply.client, upTo: reply.requestID)
            emit(.reply(reply))
        }
        if height % parameters.checkpointInterval == 0, let block = delivered[height] {
            guard let stateRoot else { preconditionFailure("the shell must give the state root at checkpoint height \(height)") }
            signCheckpoint(height: height, blockHash: block.hash, stateRoot: stateRoot)
        }
        // A proposal that waited for this block's policy (see `receivePrePrepare`).
        if let next = waitingPrePrepares.removeValue(forKey: height + 1) { receivePrePrepare(next) }
        proposeBatches(flush: true)
    }

    /// PBFT's CHECKPOINT for an executed checkpoint height: deterministic from the state, so
    /// signing it again after a restart cannot equivocate.
    mutating func signCheckpoint(height: Height, blockHash: Digest, stateRoot: Digest) {
        guard height % parameters.checkpointInterval == 0, height > lowWatermark, height <= highWatermark else { return }
        guard maySignCheckpoint(height: height) else {
            unsignedCheckpoints[height] = (blockHash, stateRoot)
            checkStable(height)
            return
        }
        let checkpoint = Checkpoint.signed(height: height, blockHash: blockHash, stateRoot: stateRoot, by: key,
                                           replica: id, cluster: cluster)
        ownCheckpoints[height] = checkpoint
        checkpointVotes[height, default: [:]][id] = checkpoint
        emit(.broadcast(.checkpoint(checkpoint)))
        checkStable(height)
    }

    /// Records checkpoint heights executed outside the normal path and signs their checkpoints.
    mutating func adoptExecuted(_ executed: [ExecutedCheckpoint]) {
        for item in executed.sorted(by: { $0.header.height < $1.header.height })
        where item.header.height > lowWatermark && item.header.height <= lastExecuted {
            let hash = item.header.hash
            delivered[item.header.height] = DeliveredBlock(header: item.header, hash: hash, historyBefore: item.historyBefore)
            signCheckpoint(height: item.header.height, blockHash: hash, stateRoot: item.stateRoot)
        }
    }
}

extension Replica {
    /// The height this replica must have executed before it answers a fast read (SPEC.md
    /// §8.6): every height it sent a COMMIT for, and every height a former life may have (what
    /// its write-ahead log forgot, and while it rejoins its signing floor). A write some client
    /// saw complete was committed by 2f+1 replicas; any 2f+1 that agree on a fast read include
    /// an honest one of them, which answers only from a state that holds the write.
    public var fastReadFloor: Height {
        max(highestCommitSent, forgottenThrough, signingFloor?.height ?? 0)
    }
}
