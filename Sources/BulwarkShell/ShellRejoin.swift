import BulwarkConsensus
import BulwarkCore

/// Rejoining after a lost disk (SPEC.md §14.4): the signing floor proven by peers' reports,
/// raised by later epochs' claims, and the moment the replica is past it.
extension ReplicaShell {
    /// What a report proves about this replica's epoch (SPEC.md §14.4), as a floor: nil for a
    /// report of another epoch (an earlier one lies below this replica's own ledger; a later
    /// one cannot be checked until the ledger reaches it). The height is its commit proof's,
    /// verified (`isCredible`), or none; the view at most `rejoinViewsAheadMax` past the view
    /// of that proof (0 when it has none in this epoch).
    func provenFloor(_ report: ProgressReport) -> SigningFloor? {
        guard report.epoch == core.epoch else { return nil }
        let proof = report.latest.flatMap { $0.header.epoch == core.epoch ? $0 : nil }
        // Views are at most `viewMax` (checked), so adding the look-ahead cannot overflow.
        let view = min(report.view, (proof?.certificate.view ?? 0) + Self.rejoinViewsAheadMax)
        return SigningFloor(epoch: core.epoch, view: view, height: proof?.height ?? 0)
    }

    /// Once a quorum answered: the floor is the highest view and height the answers prove
    /// (`provenFloor`), or this replica's own ledger if higher, plus the watermark window. It
    /// replaces any earlier floor: whatever this replica signed, before this loss or an earlier
    /// one, lies below what a quorum reports now. Claims of later epochs are kept and raise
    /// the floor when the ledger reaches their epoch. Durable before anything is signed.
    func decideRejoin(_ probe: StartupProbe) {
        guard probe.answers.count >= config.quorum else { return }
        var floor = SigningFloor(epoch: core.epoch, view: 0, height: ledger.tip.height)
        for report in probe.answers.values.compactMap(provenFloor) { floor = floor.raised(to: report) }
        laterEpochClaims = probe.answers.keys.sorted().compactMap { peer in
            probe.answers[peer].flatMap { $0.epoch > core.epoch ? $0 : nil }
        }
        // Heights are at most `heightMax` (checked), so adding the window cannot overflow.
        floor.height = min(floor.height + config.parameters.watermarkWindow, ProtocolBounds.heightMax)
        do { try journal.setFloor(floor) } catch { return fault("cannot record the signing floor: \(error)") }
        core.setSigningFloor(floor)
        logger.notice("rejoining: signing nothing at or below the floor a quorum of peers reported", metadata: [
            "height": "\(floor.height)", "view": "\(floor.view)", "epoch": "\(floor.epoch)"])
        self.probe = nil
        startCore()
    }

    /// Entering an epoch that a rejoin's answers claimed: the claims of this epoch whose commit
    /// proofs now verify raise the floor as if they had been proven when they came (a lie
    /// never verifies and moves nothing). Durable before the new epoch's core signs.
    func raiseFloorByLaterEpochClaims() {
        let due = laterEpochClaims.filter { $0.epoch == core.epoch }
        laterEpochClaims.removeAll { $0.epoch <= core.epoch }
        var raised = core.signingFloor
        for report in due {
            if let proof = report.latest, proof.header.epoch == core.epoch,
               (try? proof.certificate.verify(config: config, verifier: verifier)) == nil { continue }
            guard var proven = provenFloor(report) else { continue }
            proven.height = min(proven.height + config.parameters.watermarkWindow, ProtocolBounds.heightMax)
            raised = raised?.raised(to: proven) ?? proven
        }
        guard let raised, raised != core.signingFloor else { return }
        do { try journal.setFloor(raised) } catch { return fault("cannot record the signing floor: \(error)") }
        core.setSigningFloor(raised)
        logger.notice("rejoining: the floor rises to what peers proved of this epoch", metadata: [
            "height": "\(raised.height)", "view": "\(raised.view)", "epoch": "\(raised.epoch)"])
    }

    /// Logs (once) that the floor is behind this replica: it signs normally again.
    func noteRejoined() {
        guard rejoinAnnounced == false, let floor = core.signingFloor, core.rejoining == nil else { return }
        rejoinAnnounced = true
        logger.notice("rejoined: past the signing floor", metadata: [
            "height": "\(height)", "view": "\(core.view)", "floor": "\(floor)"])
        notify(.rejoined(floor))
    }
}
