import BulwarkConsensus
import BulwarkCore

/// How a replica starts (SPEC.md §14.4).
public enum ShellStartup: Sendable {
    /// From the data directory. An empty one first asks the peers: the replica starts as a new
    /// cluster's if a quorum of them has seen nothing happen yet, or if f+1 say they counted
    /// its own answer when they started; it rejoins if f+1 report history it can check; and
    /// otherwise refuses (it may have signed before its disk was lost: `rejoin` is the way
    /// back).
    case probe
    /// A new cluster: an empty data directory starts at genesis without asking.
    case genesis
    /// After a lost or restored disk: learn from a quorum of peers how far the cluster got,
    /// and sign nothing at or below that (plus the watermark window) until past it.
    case rejoin
}

/// A start-up waiting for the peers' answers: the core is not started until it ends.
struct StartupProbe {
    enum Goal { case genesis, rejoin }
    let goal: Goal
    let nonce: UInt64
    var answers: [ReplicaID: ProgressReport] = [:]
    var rounds = 0
}

extension ReplicaShell {
    /// What an answer to `progressQuery` says about this replica.
    func progressReport(for peer: ReplicaID? = nil) -> ProgressReport {
        let status: ProgressReport.Status = switch probe?.goal {
        case .genesis?: .awaitingGenesis
        case .rejoin?: .rejoining
        case nil: core.rejoining == nil ? .running : .rejoining
        }
        var latest: CommitProof?
        if ledger.blockLog.height > 0, let entry = try? ledger.blockLog.entry(at: ledger.blockLog.height) {
            latest = CommitProof(header: entry.block.header, certificate: entry.certificate)
        }
        return ProgressReport(status: status, epoch: core.epoch, view: core.view, latest: latest,
                              countedAnswer: peer.flatMap { countedAtGenesis[$0] })
    }

    func answerProgress(nonce: UInt64, to peer: ReplicaID) {
        guard progressQueries.allow(peer, nowMs: clock.nowMs) else { return notify(.dropped(.rateLimited)) }
        let honest = progressReport(for: peer)
        let report = interceptor?.progress(honest) ?? honest
        if report.status == .awaitingGenesis, !(answeredAsNew[peer]?.contains(nonce) ?? false) {
            answeredAsNew[peer, default: []].append(nonce)
            if answeredAsNew[peer]!.count > Self.answeredAsNewPerPeerMax { answeredAsNew[peer]!.removeFirst() }
        }
        network.send(PeerFrame.progress(nonce: nonce, report).encoded(), to: peer, afterMs: 0)
    }

    /// Starts asking the peers (from `start`), and again every retry interval for those that
    /// have not answered.
    func askPeers() {
        guard var probe = self.probe, !stopped, faulted == nil else { return }
        probe.rounds += 1
        self.probe = probe
        let missing = config.validators.map(\.id).filter { $0 != id && probe.answers[$0] == nil }
        let query = PeerFrame.progressQuery(nonce: probe.nonce).encoded()
        for peer in missing { network.send(query, to: peer, afterMs: 0) }
        if probe.rounds % 20 == 1 {
            logger.info(probe.goal == .rejoin ? "rejoining: asking the peers how far the cluster got"
                : "empty data directory: asking the peers whether the cluster is new",
                metadata: ["answered": "\(probe.answers.count)", "needed": "\(config.quorum)",
                           "waiting-for": "\(missing.map(String.init).joined(separator: ","))"])
        }
        clock.schedule(.probeRetry, afterMs: max(50, config.parameters.viewChangeTimeoutMs / 4))
    }

    /// A peer's answer. Checked before it counts: the height must come with its block's commit
    /// certificate, verified when it is of this replica's epoch (the only configuration an
    /// empty data directory knows besides cluster.json).
    func receiveProgress(nonce: UInt64, _ report: ProgressReport, from peer: ReplicaID) {
        guard var probe = self.probe, nonce == probe.nonce, peer != id, config.validator(peer) != nil else { return }
        guard isCredible(report) else { return notify(.dropped(.badProgressReport)) }
        probe.answers[peer] = report
        self.probe = probe
        switch probe.goal {
        case .genesis: decideGenesis(probe)
        case .rejoin: decideRejoin(probe)
        }
    }

    func isCredible(_ report: ProgressReport) -> Bool {
        guard ProtocolBounds.isView(report.view) else { return false }
        guard let proof = report.latest else { return true }
        let header = proof.header
        guard ProtocolBounds.isHeight(proof.height), ProtocolBounds.isView(proof.certificate.view), header.height == proof.height,
              header.clusterID == config.clusterID, header.hash == proof.certificate.blockHash,
              header.epoch <= report.epoch else { return false }
        guard header.epoch == core.epoch else { return true }
        return (try? proof.certificate.verify(config: config, verifier: verifier)) != nil
    }

    func decideGenesis(_ probe: StartupProbe) {
        if let (peer, report) = probe.answers.sorted(by: { $0.key < $1.key }).first(where: { !$0.value.isEmptyCluster }) {
            let seen = report.status == .rejoining ? "is rejoining"
                : "reports height \(report.height), view \(report.view) of epoch \(report.epoch)"
            if !answeredAsNew.isEmpty {
                // Started together with the others, which may have counted this replica's
                // answer and begun the cluster while its own question was on its way.
                return decideLateGenesis(probe, refusal: "the data directory \(dataDirectory) is empty but replica \(peer) \(seen), so the cluster has history this replica may have signed in; start it with --rejoin (or with --genesis only if this is a new cluster)")
            }
            return fault("the data directory \(dataDirectory) is empty but replica \(peer) \(seen), so the cluster has history this replica may have signed in; start it with --rejoin (or with --genesis only if this is a new cluster)")
        }
        guard probe.answers.count >= config.quorum else { return }
        logger.info("a quorum of peers has seen nothing happen: starting a new cluster", metadata: [
            "answered": "\(probe.answers.count)"])
        do { try journal.claim() } catch { return fault("\(error)") }
        for (peer, report) in probe.answers where report.status == .awaitingGenesis { countedAtGenesis[peer] = probe.nonce }
        self.probe = nil
        startCore()
    }

    /// A replica of a new cluster whose question came late: the others started, counting its
    /// "awaiting genesis" answer. When f + 1 of them say they counted an answer it gave in this
    /// life (a nonce it answered), at least one honest replica started the cluster with this
    /// replica among a quorum that had seen nothing, after this life began: it signed nothing
    /// the cluster holds, and starts at genesis like the others (catching up by state
    /// transfer). Without that, once f + 1 answers tell of history (one of them honest) and a
    /// quorum answered, it rejoins, which is safe whether or not its disk was lost. A claim of
    /// history fewer than f + 1 make may be a lie: it waits for the others, and once every peer
    /// answered without a verdict it refuses as a replica that never answered would (a new
    /// cluster with a liar among its first replicas starts with `--genesis`; SPEC.md §14.4).
    func decideLateGenesis(_ probe: StartupProbe, refusal: String) {
        let vouching = probe.answers.filter { peer, report in
            report.countedAnswer.map { answeredAsNew[peer]?.contains($0) ?? false } ?? false
        }
        if vouching.count >= config.f + 1 {
            logger.notice("the peers started the new cluster counting this replica's answer: starting at genesis", metadata: [
                "vouching": "\(vouching.keys.sorted().map(String.init).joined(separator: ","))"])
            do { try journal.claim() } catch { return fault("\(error)") }
            self.probe = nil
            return startCore()
        }
        let history = probe.answers.values.count { !$0.isEmptyCluster }
        guard history >= config.f + 1 else {
            if probe.answers.count >= config.validators.count - 1 { fault(refusal) }
            return
        }
        guard probe.answers.count >= config.quorum else { return }
        logger.notice("the peers started the new cluster while this replica was asking: rejoining it", metadata: [
            "peers-with-history": "\(history)"])
        var rejoin = StartupProbe(goal: .rejoin, nonce: probe.nonce)
        rejoin.answers = probe.answers
        rejoin.rounds = probe.rounds
        self.probe = rejoin
        decideRejoin(rejoin)
    }

    /// How far past the view its commit proof shows a report's view may count: honest
    /// replicas move one view per failed view change (with doubling timeouts), so a claim
    /// further ahead is a lie that would otherwise keep a rejoining replica silent for ever.
    public static let rejoinViewsAheadMax: View = 8
}
