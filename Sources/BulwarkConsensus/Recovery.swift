import BulwarkCore

/// Restart from the write-ahead log: a replica comes back in the highest view it had reached,
/// with every message it had signed in that view and the NEW-VIEW it entered the view by, so it
/// re-sends exactly those and never signs a conflicting one (PITFALLS: crash between signing
/// and WAL write; amnesia).
extension Replica {
    mutating func restore(_ recovery: Recovery) {
        forgottenThrough = recovery.compactedThrough
        var ownViewChange: ViewChange?
        var newView: NewView?
        var prePrepares: [PrePrepare] = []
        var prepares: [Prepare] = []
        var commits: [Commit] = []
        var highestView: View = 0
        var restoredBodies: [Block] = []
        for record in recovery.wal {
            switch record {
            case let .prepared(cert, body):
                if cert.height > lowWatermark,
                   (preparedCertificates[cert.height]?.view ?? 0) <= cert.view || preparedCertificates[cert.height] == nil {
                    preparedCertificates[cert.height] = cert
                }
                if let body, cert.height > lowWatermark { restoredBodies.append(body) }
            case let .acceptedNewView(nv):
                highestView = max(highestView, nv.view)
                if nv.view >= (newView?.view ?? 0) { newView = nv }
            case let .sent(message):
                switch message {
                case let .viewChange(vc):
                    highestView = max(highestView, vc.newView)
                    if vc.newView >= (ownViewChange?.newView ?? 0) { ownViewChange = vc }
                case let .newView(nv):
                    highestView = max(highestView, nv.view)
                    if nv.view >= (newView?.view ?? 0) { newView = nv }
                case let .prePrepare(pp):
                    highestView = max(highestView, pp.view)
                    prePrepares.append(pp)
                case let .prepare(p):
                    highestView = max(highestView, p.view)
                    prepares.append(p)
                case let .commit(c):
                    highestView = max(highestView, c.view)
                    commits.append(c)
                case .request, .checkpoint, .checkpointProof, .commitProof:
                    break
                }
            }
        }
        view = highestView
        // The bodies a reinstalled NEW-VIEW or a later view change may need, oldest first so
        // the newest stay (the store keeps the prepared one of each height).
        for pp in prePrepares where pp.height > lowWatermark { restoredBodies.append(pp.block) }
        for body in restoredBodies.sorted(by: { $0.header.view < $1.header.view }) {
            bodies.add(body, keep: preparedCertificates[body.height]?.proposal.blockHash)
        }
        // Every block this replica voted for in this view, whether or not its slot can be
        // restored (a ledger cut back by damage leaves it below them, or the window moved):
        // it never votes for another at those heights in this view. Known before reinstalling
        // the NEW-VIEW, which proposes nothing while restoring (what it signed would be
        // neither logged nor sent) but must not think a logged height free either.
        for pp in prePrepares where pp.view == view { votedInView[pp.height] = pp.blockHash }
        for p in prepares where p.view == view { votedInView[p.height] = p.blockHash }
        for c in commits where c.view == view { votedInView[c.height] = c.blockHash }
        proposalsHeld = true
        defer { proposalsHeld = false }
        if let nv = newView, nv.view == highestView {
            // We entered this view by its NEW-VIEW, as its primary or by accepting it: reinstall
            // it, so the view's proposals are known again and nothing conflicting is accepted.
            installNewView(nv, plan: NewViewPlan(view: nv.view, viewChanges: nv.viewChanges, config: config, epoch: epoch,
                                                 base: epochBase))
            // Nothing is sent during construction: drop what reinstalling emitted and forget
            // the timers it armed, so `start` and later events arm them afresh. A state
            // transfer it asked for stays pending, and `start` asks for it again.
            output = []
            requestTimerArmed = false
            batchTimerArmed = false
        } else if let vc = ownViewChange, vc.newView == highestView {
            isChangingView = true
            self.ownViewChange = vc
            viewChanges[id] = vc
        }
        // Checkpoints of blocks replayed from the ledger are re-signed in `start`.
        adoptExecuted(recovery.executed)
        output = []
        guard !isChangingView else { return }
        for pp in prePrepares.sorted(by: { $0.height < $1.height })
        where pp.view == view && pp.height > chain.height && slots[pp.height]?.proposal == nil {
            nextProposal = max(nextProposal, pp.height + 1)
            guard let predecessor = predecessorTip(of: pp.height) else {
                // Linked once the blocks below arrive (state transfer hands them on).
                if pp.height <= highWatermark { waitingPrePrepares[pp.height] = pp }
                continue
            }
            install(pp, tipAfter: predecessor.appending(pp.block.header, hash: pp.blockHash))
            pool.markProposed(pp.block.requests, nowMs: nowMs)
        }
        for p in prepares where p.view == view && p.height > chain.height && p.height <= highWatermark {
            slots[p.height, default: Slot()].ownPrepare = p
        }
        for c in commits where c.view == view && c.height > chain.height && c.height <= highWatermark {
            slots[c.height, default: Slot()].ownCommit = c
        }
    }
}
