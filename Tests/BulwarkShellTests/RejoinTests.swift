import BulwarkConsensus
import BulwarkCore
@testable import BulwarkShell
import BulwarkStorage
import Testing

/// A replica that lost its disk (SPEC.md §14.4): an empty data directory starts a new cluster
/// only if a quorum of peers has seen nothing happen, and `rejoin` learns a floor from a
/// quorum and signs nothing at or below it until past it.
@Suite struct RejoinTests {
    /// What replica `i` signed itself, among the frames it sent (view, height of each vote).
    static func signedVotes(in frames: [ShellCluster.Frame], by i: Int) -> [(kind: String, view: View, height: Height)] {
        frames.compactMap { frame in
            guard frame.from == i, case let .consensus(_, message)? = frame.peerFrame, message.sender == ReplicaID(i) else {
                return nil
            }
            switch message {
            case let .prePrepare(m): return ("pre-prepare", m.view, m.height)
            case let .prepare(m): return ("prepare", m.view, m.height)
            case let .commit(m): return ("commit", m.view, m.height)
            case let .checkpoint(m): return ("checkpoint", 0, m.height)
            case let .viewChange(m): return ("view-change", m.newView, 0)
            case let .newView(m): return ("new-view", m.view, 0)
            default: return nil
            }
        }
    }

    /// Commits `count` requests, one at a time.
    static func commit(_ count: Int, in cluster: ShellCluster, rounds: Int = 5,
                       accept: (ShellCluster.Frame) -> Bool = { _ in true }) {
        for _ in 0..<count {
            cluster.request(to: [0, 1, 2, 3])
            cluster.run(rounds: rounds, accept: accept)
        }
    }

    @Test func aNewClusterStartsOnlyOnceAQuorumOfPeersHasSeenNothing() {
        let cluster = ShellCluster(startup: .probe)
        // Replica 3 does not answer: the others each hear from two peers only, and wait.
        cluster.run(rounds: 20, stepMs: 500) { frame in frame.from != 3 && frame.to != .replica(3) }
        #expect((0..<3).allSatisfy { cluster.shell($0).isProbing })
        #expect(cluster.shell(0).height == 0)
        // With every peer answering, all four start and serve.
        cluster.run(rounds: 20, stepMs: 500)
        #expect((0..<4).allSatisfy { !cluster.shell($0).isProbing })
        Self.commit(2, in: cluster)
        #expect((0..<4).allSatisfy { cluster.shell($0).height == 2 }, "\((0..<4).map { cluster.shell($0).height })")
    }

    /// Issue 29 item 11: four replicas of a new cluster started together. Replica 2 answered
    /// the others' questions ("seen nothing"), they counted it and started, and committed
    /// before its own question got through: told of history, it refused to start, and the new
    /// cluster came up with three. The others now say they counted its answer, by their
    /// query's nonce; it gave that answer in this life, so it starts at genesis, catches up
    /// and votes at once.
    @Test func aReplicaStartedTogetherWhoseQuestionCameLateStillComesUp() throws {
        let cluster = ShellCluster(startup: .probe)
        Self.startWithLateQuestion(cluster)
        // Now its question gets through, and the answers tell of history.
        cluster.run(rounds: 20, stepMs: 500)
        #expect(cluster.shell(2).faulted == nil, "\(cluster.shell(2).faulted ?? "")")
        #expect(!cluster.shell(2).isProbing)
        #expect(cluster.shell(2).core.signingFloor == nil, "it started as a new cluster's replica, not a rejoining one")
        Self.commit(3, in: cluster)
        #expect(cluster.shell(2).height == cluster.shell(0).height, "\((0..<4).map { cluster.shell($0).height })")
        // It votes: with replica 3 gone, the cluster still commits.
        cluster.shells[3] = nil
        let before = cluster.shell(0).height
        Self.commit(2, in: cluster) { $0.to != .replica(3) }
        #expect(cluster.shell(0).height == before + 2 && cluster.shell(2).height == before + 2)
    }

    /// A vouch for an answer this life never gave (a lie, or an answer of a life before a lost
    /// disk) counts for nothing: having answered as new, the replica rejoins instead.
    @Test func aVouchForAnAnswerThisLifeNeverGaveDoesNotCount() throws {
        let cluster = ShellCluster(startup: .probe)
        Self.startWithLateQuestion(cluster)
        let nonce = try #require(cluster.shell(2).probe?.nonce)
        for peer in [0, 1, 3] {
            var report = cluster.shell(peer).progressReport()
            report.countedAnswer = 0x0bad_c0de
            cluster.shell(2).receiveProgress(nonce: nonce, report, from: ReplicaID(peer))
        }
        #expect(cluster.shell(2).faulted == nil)
        #expect(!cluster.shell(2).isProbing)
        #expect(cluster.shell(2).core.signingFloor != nil, "it rejoins below the floor a quorum reported")
    }

    /// One liar claiming history (a view far ahead, nothing proven) while the others have seen
    /// nothing is not f + 1 claims: a replica that answered as new does not rejoin on it (a
    /// cluster whose replicas all rejoined at once would sign nothing, ever: found with
    /// `tools/byzantine --behaviours lying-progress`). Once every peer answered it refuses,
    /// naming `--genesis`, as a replica that never answered does.
    @Test func oneLiarClaimingHistoryDoesNotMakeANewReplicaRejoin() throws {
        let cluster = ShellCluster(startup: .probe)
        Self.startWithLateQuestion(cluster)
        let nonce = try #require(cluster.shell(2).probe?.nonce)
        let empty = ProgressReport(status: .running, epoch: 0, view: 0, latest: nil)
        let lie = ProgressReport(status: .running, epoch: 0, view: 1 << 40, latest: nil)
        cluster.shell(2).receiveProgress(nonce: nonce, lie, from: 0)
        cluster.shell(2).receiveProgress(nonce: nonce, empty, from: 1)
        #expect(cluster.shell(2).isProbing && cluster.shell(2).faulted == nil, "it waits for the last peer")
        cluster.shell(2).receiveProgress(nonce: nonce, empty, from: 3)
        #expect(cluster.shell(2).core.signingFloor == nil, "it did not rejoin on one unbacked claim")
        let fault = try #require(cluster.shell(2).faulted)
        #expect(fault.contains("--genesis"), "\(fault)")
    }

    /// All four start asking; replica 2's own questions (and answers to it) are lost while the
    /// others, which counted its answers, start and commit two blocks.
    static func startWithLateQuestion(_ cluster: ShellCluster) {
        func lateQuestion(_ frame: ShellCluster.Frame) -> Bool {
            switch frame.peerFrame {
            case .progressQuery?: return frame.from != 2
            case .progress?: return frame.to != .replica(2)
            default: return true
            }
        }
        cluster.run(rounds: 20, stepMs: 500, accept: lateQuestion)
        #expect([0, 1, 3].allSatisfy { !cluster.shell($0).isProbing }, "the others counted replica 2 and started")
        #expect(cluster.shell(2).isProbing)
        Self.commit(2, in: cluster, accept: lateQuestion)
        #expect(cluster.shell(0).height == 2)
    }

    @Test func anEmptyReplicaOfAClusterWithHistoryRefusesAndNamesRejoin() throws {
        let cluster = ShellCluster()
        Self.commit(3, in: cluster)
        try cluster.wipe(2, startup: .probe)
        #expect(cluster.shell(2).isProbing)
        cluster.run(rounds: 5, stepMs: 500)
        let fault = try #require(cluster.shell(2).faulted, "replica 2 started on an empty disk in a cluster with history")
        #expect(fault.contains("--rejoin") && fault.contains("reports height 3"), "\(fault)")
        // It signed nothing meanwhile, and left its log unclaimed: started again the same way,
        // it asks again (and refuses again) rather than take its own earlier try for a past.
        #expect(cluster.shell(2).core.view == 0 && cluster.shell(2).height == 0)
        cluster.shells[2] = nil
        try cluster.start(2, startup: .probe)
        #expect(cluster.shell(2).isProbing)
    }

    /// The whole way back: the floor a quorum reported, silence below it while following the
    /// cluster, a view change, and normal voting above it; the floor survives a restart.
    @Test func aWipedReplicaRejoinsAndSignsNothingBelowItsFloor() throws {
        let cluster = ShellCluster()
        Self.commit(6, in: cluster)
        let reached = cluster.shell(0).height
        try cluster.wipe(2, startup: .rejoin)
        var sent: [ShellCluster.Frame] = []
        let record: (ShellCluster.Frame) -> Bool = { sent.append($0); return true }
        cluster.run(rounds: 3, stepMs: 100, accept: record)
        let floor = try #require(cluster.shell(2).core.signingFloor)
        // Window 16 above the highest height reported; view 0 of epoch 0.
        #expect(floor == SigningFloor(epoch: 0, view: 0, height: reached + 16), "\(floor)")
        #expect(cluster.shell(2).core.rejoining == floor)
        // Past the floor's height, in the floor's view: it follows and executes, silently.
        Self.commit(Int(floor.height - reached) + 4, in: cluster, accept: record)
        #expect(cluster.shell(2).height == cluster.shell(0).height && cluster.shell(2).height > floor.height)
        // (A checkpoint carries no view: one above the floor's height may be signed.)
        let silent = Self.signedVotes(in: sent, by: 2)
        #expect(silent.allSatisfy { $0.kind == "checkpoint" && $0.height > floor.height }, "\(silent)")
        #expect(cluster.shell(2).core.rejoining != nil, "still in the floor's view")
        // The primary goes quiet: the others change view without replica 2 (it may not ask for
        // view 1) and it follows their NEW-VIEW.
        cluster.request(to: [0, 1, 2, 3])
        cluster.run(rounds: 40, stepMs: 500) { frame in record(frame) && frame.from != 0 }
        cluster.run(rounds: 10, stepMs: 100, accept: record)
        #expect(cluster.shell(2).core.view == 1 && cluster.shell(2).core.rejoining == nil)
        #expect(cluster.notices[2, default: []].contains { if case .rejoined = $0 { true } else { false } })
        let before = Self.signedVotes(in: sent, by: 2).filter { $0.kind != "checkpoint" }.count
        Self.commit(3, in: cluster, accept: record)
        let votes = Self.signedVotes(in: sent, by: 2)
        #expect(votes.filter { $0.kind != "checkpoint" }.count > before, "replica 2 never voted after its floor")
        for vote in votes {
            #expect(vote.height > floor.height || vote.kind == "view-change", "\(vote)")
            #expect(vote.view > floor.view || vote.kind == "checkpoint", "\(vote)")
        }
        // The floor is in its write-ahead log: a restart keeps it.
        cluster.shells[2] = nil
        try cluster.start(2)
        #expect(cluster.shell(2).core.signingFloor == floor)
    }

    @Test func aRejoinInterruptedBeforeTheAnswersResumesOnRestart() throws {
        let cluster = ShellCluster()
        Self.commit(2, in: cluster)
        try cluster.wipe(2, startup: .rejoin)
        cluster.run(rounds: 3, stepMs: 100) { $0.to != .replica(2) }
        #expect(cluster.shell(2).isProbing && cluster.shell(2).core.signingFloor == .unknown)
        // Restarted without --rejoin: its log says a rejoin is under way, so it asks again.
        cluster.shells[2] = nil
        try cluster.start(2, startup: .genesis)
        #expect(cluster.shell(2).isProbing)
        cluster.run(rounds: 3, stepMs: 100)
        #expect(!cluster.shell(2).isProbing && cluster.shell(2).core.signingFloor?.height == 2 + 16)
    }

    @Test func aProgressReportWithAForgedCertificateIsNotCounted() throws {
        let cluster = ShellCluster()
        Self.commit(2, in: cluster)
        try cluster.wipe(2, startup: .rejoin)
        let nonce = try #require(cluster.shell(2).probe?.nonce)
        var report = cluster.shell(1).progressReport()
        var proof = try #require(report.latest)
        proof.certificate.votes[0].signature = Signature(raw: Bytes64(Array(repeating: 7, count: 64))!)
        report.latest = proof
        cluster.frames = [ShellCluster.Frame(from: 1, to: .replica(2), bytes: PeerFrame.progress(nonce: nonce, report).encoded())]
        cluster.run()
        #expect(cluster.shell(2).probe?.answers.isEmpty == true)
        #expect(cluster.notices[2, default: []].contains { if case .dropped(.badProgressReport) = $0 { true } else { false } })
    }

    /// Found in Bulwark: one Byzantine peer answering `progressQuery` with an unproven epoch
    /// 2^40 and view 2^62 set the signing floor out of reach, so the rejoining replica followed
    /// the ledger but never signed again. A claim counts only as far as it is proven: an epoch
    /// beyond this replica's not at all (until its ledger reaches that epoch), a view at most
    /// `rejoinViewsAheadMax` past the view of the report's own commit proof.
    @Test func unprovenProgressClaimsDoNotMoveTheFloor() throws {
        let cluster = ShellCluster()
        Self.commit(2, in: cluster)
        try cluster.wipe(2, startup: .rejoin)
        let nonce = try #require(cluster.shell(2).probe?.nonce)
        var farEpoch = cluster.shell(1).progressReport()
        farEpoch.epoch = 1 << 40
        farEpoch.latest = nil
        var farView = cluster.shell(3).progressReport()
        farView.view = 1 << 61
        cluster.frames = [1, 3].map { peer in
            ShellCluster.Frame(from: peer, to: .replica(2),
                               bytes: PeerFrame.progress(nonce: nonce, peer == 1 ? farEpoch : farView).encoded())
        }
        // Replica 0 answers a retry (its answer to the first query was dropped above).
        for _ in 0..<100 where cluster.shell(2).isProbing { cluster.run(rounds: 2, stepMs: 100) }
        #expect(!cluster.shell(2).isProbing, "answers: \(cluster.shell(2).probe?.answers.keys.sorted() ?? [])")
        let floor = try #require(cluster.shell(2).core.signingFloor)
        #expect(floor.epoch == 0, "\(floor)")
        #expect(floor.view <= ReplicaShell.rejoinViewsAheadMax, "\(floor)")
        #expect(floor.height == 2 + 16, "\(floor)")
        #expect(cluster.shell(2).laterEpochClaims.map(\.epoch) == [1 << 40])
    }
}
