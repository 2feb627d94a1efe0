import BulwarkCore

/// Restart from the write-ahead log: a replica comes back in the highest view it had reached,
/// with every message it had signed in that view and the NEW-VIEW it entered the view by, so it
/// re-sends exactly those and never signs a conflicting one (PITFALLS: crash between signing
/// and WAL write; amnesia).
extension Replica {
    /// What the WAL says this replica signed and saw, gathered in one pass.
    struct Logged {
        var ownViewChange: ViewChange?
        var newView: NewView?
        var prePrepares: [PrePrepare] = []
        var prepares: [Prepare] = []
        var commits: [Commit] = []
        var highestView: View = 0
        /// Bodies of prepared blocks the WAL kept.
        var bodies: [Block] = []
    }

    mutating func restore(_ recovery: Recovery) {
        forgottenThrough = recovery.compactedThrough
        let logged = scan(recovery.wal)
        view = logged.highestView
        restoreBodies(logged)
        // Every block this replica voted for in this view, whether or not its slot can be
        // restored (a ledger cut back by damage leaves it below them, or the window moved):
        // it never votes for another at those heights in this view. Known before reinstalling
        // the NEW-VIEW, which proposes nothing while restoring (what it signed would be
        // neither logged nor sent) but must not think a logged height free either.
        for pp in logged.prePrepares where pp.view == view { votedInView[pp.height] = pp.blockHash }
        for p in logged.prepares where p.view == view { votedInView[p.height] = p.blockHash }
        for c in logged.commits where c.view == view { votedInView[c.height] = c.blockHash }
        proposalsHeld = true
        defer { proposalsHeld = false }
        reenterView(logged)
        // Checkpoints of blocks replayed from the ledger are re-signed in `start`.
        adoptExecuted(recovery.executed)
        output = Ready()
        guard !isChangingView else { return }
        restoreSlots(logged)
    }

    /// One pass over the WAL: the newest prepared certificate of each height is taken in at
    /// once; the rest is gathered for the steps after.
    mutating func scan(_ wal: [WALRecord]) -> Logged {
        var logged = Logged()
        for record in wal {
            switch record {
            case let .prepared(cert, body):
                if cert.height > lowWatermark,
                   (preparedCertificates[cert.height]?.view ?? 0) <= cert.view || preparedCertificates[cert.height] == nil {
                    preparedCertificates[cert.height] = cert
                }
                if let body, cert.height > lowWatermark { logged.bodies.append(body) }
            case let .acceptedNewView(nv):
                logged.highestView = max(logged.highestView, nv.view)
                if nv.view >= (logged.newView?.view ?? 0) { logged.newView = nv }
            case let .sent(message):
                scanSent(message, into: &logged)
            }
        }
        return logged
    }

    func scanSent(_ message: Message, into logged: inout Logged) {
        switch message {
        case let .viewChange(vc):
            logged.highestView = max(logged.highestView, vc.newView)
            if vc.newView >= (logged.ownViewChange?.newView ?? 0) { logged.ownViewChange = vc }
        case let .newView(nv):
            logged.highestView = max(logged.highestView, nv.view)
            if nv.view >= (logged.newView?.view ?? 0) { logged.newView = nv }
        case let .prePrepare(pp):
            logged.highestView = max(logged.highestView, pp.view)
            logged.prePrepares.append(pp)
        case let .prepare(p):
            logged.highestView = max(logged.highestView, p.view)
            logged.prepares.append(p)
        case let .commit(c):
            logged.highestView = max(logged.highestView, c.view)
            logged.commits.append(c)
        case .request, .checkpoint, .checkpointProof, .commitProof:
            break
        }
    }

    /// The bodies a reinstalled NEW-VIEW or a later view change may need, oldest first so the
    /// newest stay (the store keeps the prepared one of each height).
    mutating func restoreBodies(_ logged: Logged) {
        var restored = logged.bodies
        for pp in logged.prePrepares where pp.height > lowWatermark { restored.append(pp.block) }
        for body in restored.sorted(by: { $0.header.view < $1.header.view }) {
            bodies.add(body, keep: preparedCertificates[body.height]?.proposal.blockHash)
        }
    }

    /// Back into the view the WAL reached: by its NEW-VIEW, or in the view change it had sent.
    mutating func reenterView(_ logged: Logged) {
        if let nv = logged.newView, nv.view == logged.highestView {
            // We entered this view by its NEW-VIEW, as its primary or by accepting it: reinstall
            // it, so the view's proposals are known again and nothing conflicting is accepted.
            installNewView(nv, plan: NewViewPlan(view: nv.view, viewChanges: nv.viewChanges, config: config, epoch: epoch,
                                                 base: epochBase))
            // Nothing is sent during construction: drop what reinstalling emitted and forget
            // the timers it armed, so `start` and later events arm them afresh. A state
            // transfer it asked for stays pending, and `start` asks for it again.
            output = Ready()
            requestTimerArmed = false
            batchTimerArmed = false
        } else if let vc = logged.ownViewChange, vc.newView == logged.highestView {
            isChangingView = true
            self.ownViewChange = vc
            viewChanges[id] = vc
        }
    }

    /// The slots of this view above the executed chain, with this replica's own votes in them.
    mutating func restoreSlots(_ logged: Logged) {
        for pp in logged.prePrepares.sorted(by: { $0.height < $1.height })
        where pp.view == view && pp.height > chain.height && slots[pp.height]?.proposal == nil {
            nextProposal = max(nextProposal, pp.height + 1)
            // Signed above the window this restart opens (its stable checkpoint was lost, or its
            // ledger cut back): never proposed again (`nextProposal`, `votedInView`), but not a
            // slot either; the view change or state transfer that follows settles those heights.
            guard pp.height <= max(highWatermark, newViewMaxHeight) else { continue }
            guard let predecessor = predecessorTip(of: pp.height) else {
                // Linked once the blocks below arrive (state transfer hands them on).
                if pp.height <= highWatermark { waitingPrePrepares[pp.height] = pp }
                continue
            }
            install(pp, tipAfter: predecessor.appending(pp.block.header, hash: pp.blockHash))
            pool.markProposed(pp.block.requests, nowMs: nowMs)
        }
        for p in logged.prepares where p.view == view && p.height > chain.height && p.height <= highWatermark {
            slots[p.height, default: Slot()].ownPrepare = p
        }
        // Whatever view it was in, a COMMIT this replica sent holds back its fast reads.
        highestCommitSent = max(highestCommitSent, logged.commits.map(\.height).max() ?? 0)
        for c in logged.commits where c.view == view && c.height > chain.height && c.height <= highWatermark {
            slots[c.height, default: Slot()].ownCommit = c
        }
    }
}
