import BulwarkCore

/// View changes (TOCS §4.4–4.5).
extension Replica {
    /// Stops accepting normal-case messages of the current view and asks to move to `target`.
    mutating func startViewChange(to target: View) {
        // A rejoining replica below its floor does not ask: it follows the NEW-VIEW the others
        // make (`receiveNewView` takes one for any higher view).
        guard target > view, maySignViewChange(to: target) else { return }
        view = target
        votedInView = [:]
        isChangingView = true
        consecutiveViewChanges += 1
        slots = [:]
        waitingPrePrepares = [:]
        newViewMessage = nil
        newViewMaxHeight = 0
        batchTimerArmed = false
        requestTimerArmed = false
        newViewTimerArmed = false
        let prepared = preparedCertificates.keys.sorted().filter { $0 > lowWatermark }.map { preparedCertificates[$0]! }
        let vc = ViewChange.signed(newView: target, checkpoint: stable, prepared: prepared, by: key, replica: id,
                                   cluster: cluster, epoch: epoch)
        ownViewChange = vc
        for (sender, other) in viewChanges where other.newView < target { viewChanges[sender] = nil }
        viewChanges[id] = vc
        persist(.sent(.viewChange(vc)))
        emit(.broadcast(.viewChange(vc)))
        armNewViewTimerIfQuorum()
        sendNewViewIfReady()
    }

    mutating func receiveViewChange(_ vc: ViewChange) {
        guard vc.newView > view || (vc.newView == view && isChangingView) else {
            // A replica still asking for the view we are in missed its NEW-VIEW: send it again.
            if vc.newView == view, isPrimary, let nv = newViewMessage { emit(.send(.newView(nv), to: vc.replica)) }
            return
        }
        if let existing = viewChanges[vc.replica], existing.newView >= vc.newView { return }
        guard isValid(vc) else { return reject(.invalidViewChange) }
        viewChanges[vc.replica] = vc
        // TOCS §4.5.2: f+1 replicas asking for higher views cannot all be faulty; join the
        // smallest of those views rather than wait for our own timer.
        let higher = viewChanges.values.filter { $0.newView > view }.map(\.newView).sorted(by: >)
        if higher.count >= config.f + 1 {
            startViewChange(to: higher[config.f])
            return
        }
        if isChangingView {
            armNewViewTimerIfQuorum()
            if vc.newView == view { sendNewViewIfReady() }
        }
    }

    /// TOCS §4.5.2: the new-view timer starts only once a quorum asked for the view, so a
    /// replica alone in its view change does not race ahead (PITFALLS: sawtooth-pbft #133).
    /// A replica asking for a later view counts too: it has given up on every view before
    /// its own. Counting only exact matches deadlocks when a replica that already moved on
    /// retransmits only its latest view-change, so the others never see a quorum for theirs.
    mutating func armNewViewTimerIfQuorum() {
        guard isChangingView, !newViewTimerArmed,
              viewChanges.values.filter({ $0.newView >= view }).count >= quorum else { return }
        newViewTimerArmed = true
        emit(.setTimer(.newView(view), afterMs: viewChangeTimeoutMs))
    }

    func viewChangeCount(for target: View) -> Int { viewChanges.values.filter { $0.newView == target }.count }

    mutating func sendNewViewIfReady() {
        guard isChangingView, config.primary(of: view) == id, viewChangeCount(for: view) >= quorum else { return }
        // Deterministic choice of the quorum: lowest replica ids.
        let proof = viewChanges.keys.sorted().compactMap { viewChanges[$0] }.filter { $0.newView == view }.prefix(quorum)
        let plan = NewViewPlan(view: view, viewChanges: Array(proof), config: config, epoch: epoch, base: epochBase)
        let proposals = plan.headers.map { Proposal.signed(view: view, header: $0, by: key, replica: id, cluster: cluster) }
        let nv = NewView.signed(view: view, viewChanges: Array(proof), proposals: proposals, by: key, replica: id,
                                cluster: cluster, epoch: epoch)
        persist(.sent(.newView(nv)))
        emit(.broadcast(.newView(nv)))
        installNewView(nv, plan: plan)
        sendReproposalBodies()
    }

    /// The new primary sends each re-proposed block it holds as an ordinary PRE-PREPARE of the
    /// new view (each fits a frame), for backups that never received it.
    mutating func sendReproposalBodies() {
        guard isPrimary, !isChangingView, let nv = newViewMessage else { return }
        for proposal in nv.proposals where proposal.height > chain.height {
            if let pp = slots[proposal.height]?.prePrepare, pp.blockHash == proposal.blockHash, pp.block.requests.count > 0 {
                emit(.broadcast(.prePrepare(pp)))
            }
        }
    }

    mutating func receiveNewView(_ nv: NewView) {
        guard nv.view > 0, nv.replica == config.primary(of: nv.view) else { return reject(.notFromPrimary) }
        // Accept the NEW-VIEW of a higher view (catching up), of the view we are changing to, or
        // of our current view when we restarted in it without one.
        let wanted = nv.view > view || (nv.view == view && (isChangingView || newViewMessage == nil))
        guard wanted else { return }
        guard isSigned(by: nv.replica, nv.signature, nv.signedBytes(cluster, epoch: epoch)) else { return reject(.badSignature) }
        var senders = Set<ReplicaID>()
        for vc in nv.viewChanges {
            guard vc.newView == nv.view, senders.insert(vc.replica).inserted, config.validator(vc.replica) != nil,
                  isValid(vc) else { return reject(.invalidNewView) }
        }
        guard senders.count >= quorum else { return reject(.invalidNewView) }
        // Every replica recomputes the primary's proposals from the same view-changes and
        // accepts the NEW-VIEW only if they are exactly those (TOCS §4.4).
        let plan = NewViewPlan(view: nv.view, viewChanges: nv.viewChanges, config: config, epoch: epoch, base: epochBase)
        guard nv.proposals.count == plan.headers.count, plan.maxHeight <= epochLastHeight ?? .max else {
            return reject(.invalidNewView)
        }
        for (proposal, header) in zip(nv.proposals, plan.headers) {
            guard proposal.view == nv.view, proposal.replica == nv.replica, proposal.header == header,
                  isSigned(by: proposal.replica, proposal.signature, proposal.signedBytes(cluster)) else {
                return reject(.invalidNewView)
            }
        }
        persist(.acceptedNewView(nv))
        installNewView(nv, plan: plan)
    }

    mutating func installNewView(_ nv: NewView, plan: NewViewPlan) {
        if nv.view > view { votedInView = [:] }
        // The NEW-VIEW's pre-prepares are the new primary's own in this view.
        if nv.replica == id { for proposal in nv.proposals { votedInView[proposal.height] = proposal.blockHash } }
        view = nv.view
        isChangingView = false
        newViewTimerArmed = false
        newViewMessage = nv
        ownViewChange = nil
        for (sender, vc) in viewChanges where vc.newView <= view { viewChanges[sender] = nil }
        slots = [:]
        waitingPrePrepares = [:]
        batchTimerArmed = false
        // Nothing is proposed until the view is installed: adopting the checkpoint may make it
        // stable, which proposes, and a proposal then would stand at a height the plan
        // re-proposes, or carry requests the plan re-proposes and be proposed again (a second
        // PRE-PREPARE for one height in this view).
        let held = proposalsHeld
        proposalsHeld = true
        let adopted = adopt(plan, of: nv)
        proposalsHeld = held
        guard adopted else { return }
        nextProposal = max(chain.height, plan.maxHeight, lowWatermark) + 1
        pool.resetForNewView(nowMs: nowMs)
        // The new primary gets a full timeout to drive the epoch to its end, as it does for
        // each pending request.
        if epochEndWaitSinceMs != nil { epochEndWaitSinceMs = nowMs }
        for proposal in nv.proposals { if let body = slots[proposal.height]?.body { pool.markProposed(body.requests, nowMs: nowMs) } }
        turnaround.startView()
        requestTimerArmed = false
        armRequestTimer()
        emit(.enteredView(view, primary: primary))
        proposeBatches(flush: false)
    }

    /// Adopts the plan's checkpoint and installs its re-proposals; false on a fault (the plan
    /// re-proposes a height with a block other than the one delivered there).
    private mutating func adopt(_ plan: NewViewPlan, of nv: NewView) -> Bool {
        if let checkpoint = plan.checkpoint, checkpoint.height > lowWatermark {
            if checkpoint.height > chain.height {
                // Behind the cluster's stable checkpoint: adopt it and fetch what is missing.
                requestStateTransfer(checkpoint)
                makeStable(checkpoint)
            } else if checkpoint.height <= lastExecuted {
                receiveCheckpointProof(checkpoint)
            }
        }
        for (proposal, tipAfter) in zip(nv.proposals, plan.tipsAfter) where proposal.height > lowWatermark {
            let height = proposal.height
            if let d = delivered[height], d.hash != proposal.blockHash {
                emit(.fault("NEW-VIEW for view \(view) re-proposes height \(height) with a block other than the one delivered"))
                return false
            }
            install(proposal, body: body(of: proposal), tipAfter: tipAfter)
            newViewMaxHeight = max(newViewMaxHeight, height)
            sendPrepare(for: height)
            advance(height)
        }
        return true
    }

    /// The body of a re-proposed block, when this replica holds it: a null block's is empty.
    func body(of proposal: Proposal) -> Block? {
        if proposal.header.txRoot == MerkleTree.emptyRoot { return Block(header: proposal.header, requests: []) }
        return bodies.body(height: proposal.height, hash: proposal.blockHash)
    }

    /// A VIEW-CHANGE is valid when it is signed by its sender, its checkpoint proof holds, and
    /// every prepared certificate is a real one: a pre-prepare signed by that view's primary
    /// and quorum−1 matching prepares from distinct backups, all above the checkpoint and
    /// inside the window (PITFALLS: forged prepared certificates).
    func isValid(_ vc: ViewChange) -> Bool {
        guard isSigned(by: vc.replica, vc.signature, vc.signedBytes(cluster, epoch: epoch)) else { return false }
        // No checkpoint proof: the replica stands at this epoch's base.
        let base = vc.checkpoint?.height ?? epochBase.height
        if let proof = vc.checkpoint {
            guard proof.height > epochBase.height, proof.height % parameters.checkpointInterval == 0, isValid(proof) else { return false }
        }
        var previous = base
        for cert in vc.prepared {
            let pp = cert.proposal
            // `pp.height > previous >= base`, so the difference cannot underflow.
            guard pp.height > previous, pp.height - base <= parameters.watermarkWindow, pp.view < vc.newView,
                  pp.replica == config.primary(of: pp.view), pp.header.clusterID == cluster,
                  pp.header.epoch == epoch, pp.height <= epochLastHeight ?? .max,
                  isSigned(by: pp.replica, pp.signature, pp.signedBytes(cluster)) else { return false }
            previous = pp.height
            var signers = Set<ReplicaID>()
            for prepare in cert.prepares {
                guard prepare.view == pp.view, prepare.height == pp.height, prepare.blockHash == pp.blockHash,
                      prepare.replica != pp.replica, signers.insert(prepare.replica).inserted,
                      isSigned(by: prepare.replica, prepare.signature, prepare.signedBytes(cluster)) else { return false }
            }
            guard signers.count >= quorum - 1 else { return false }
        }
        return true
    }
}

/// The new primary's proposals for a view, computed from a quorum of VIEW-CHANGE messages
/// (TOCS §4.4: "the new primary computes O from V"). Pure and deterministic: the primary and
/// every backup compute it from the same messages and must get the same blocks.
///
/// - The base is the highest stable checkpoint in the set (the epoch's base if none).
/// - For each height above it up to the highest prepared height, the prepared block (by its
///   header) from the highest view is re-proposed when it links to the block chosen below it; otherwise a null
///   block (no requests) fills the height. A prepared block that does not link cannot have
///   committed anywhere: a replica commits a height only once the height below is prepared, so
///   the predecessor of anything committed is carried by the quorum too.
struct NewViewPlan {
    let checkpoint: CheckpointProof?
    let base: ChainTip
    /// The header proposed at each height above the base, in order.
    let headers: [BlockHeader]
    let tipsAfter: [ChainTip]

    var maxHeight: Height { tipsAfter.last?.height ?? base.height }

    init(view: View, viewChanges: [ViewChange], config: ClusterConfig, epoch: UInt64, base epochBase: ChainTip) {
        var best: CheckpointProof?
        for vc in viewChanges {
            if let proof = vc.checkpoint, proof.height > (best?.height ?? epochBase.height) { best = proof }
        }
        checkpoint = best
        base = best?.tip ?? epochBase
        var candidates: [Height: Proposal] = [:]
        for vc in viewChanges {
            for cert in vc.prepared where cert.height > base.height {
                let pp = cert.proposal
                if let current = candidates[pp.height],
                   current.view > pp.view || (current.view == pp.view && current.blockHash <= pp.blockHash) { continue }
                candidates[pp.height] = pp
            }
        }
        let top = candidates.keys.max() ?? base.height
        var headers: [BlockHeader] = []
        var tips: [ChainTip] = []
        var tip = base
        if top > base.height {
            for height in (base.height + 1)...top {
                let header: BlockHeader
                if let pp = candidates[height], tip.isLinked(to: pp.header) {
                    header = pp.header
                } else {
                    header = BlockHeader(
                        clusterID: config.clusterID, epoch: epoch, height: height, view: view, timestampMs: tip.timestampMs,
                        proposer: config.primary(of: view), prevBlockHash: tip.blockHash, txRoot: MerkleTree.emptyRoot,
                        historyRoot: tip.history.root)
                }
                tip = tip.appending(header, hash: header.hash)
                headers.append(header)
                tips.append(tip)
            }
        }
        self.headers = headers
        self.tipsAfter = tips
    }
}
