import BulwarkAdversary
import BulwarkConsensus
import BulwarkCore
@testable import BulwarkSimulation
import Testing

/// Every Byzantine behaviour, as the primary of view 0 (replica 0) and as a backup (replica 1),
/// under the seed's own mix of network faults and crashes, with a malicious client attacking
/// too. Every checker must pass for the honest replicas: agreement, valid chains, validity,
/// exactly-once, durability, liveness, linearizability and the bank invariant.
@Suite struct ByzantineSimulationTests {
    @Test(arguments: Behaviour.allCases)
    func oneByzantineReplicaCannotBreakSafetyOrLiveness(behaviour: Behaviour) {
        var failed: [String] = []
        for (replica, seed) in [(0, UInt64(11)), (1, UInt64(12))] {
            var options = SimulationOptions.mixed(seed: seed)
            options.byzantine = [replica: [behaviour]]
            options.maliciousClients = 1
            let report = Simulation(options: options).run()
            if !report.passed {
                failed.append("\(report.summary)\n  \(report.failures.joined(separator: "\n  "))\n  replay: \(options.replayCommand)")
            }
        }
        #expect(failed.isEmpty, "\(failed.joined(separator: "\n"))")
    }

    /// State transfer runs through the real frames and the real checks: a Byzantine server's
    /// forged, reordered, cut-short, empty and boundary-value answers are each rejected by the
    /// honest replica asking, which turns to the next peer and catches up all the same.
    @Test func byzantineStateTransferServersAreRejected() {
        var rejected = 0
        var failed: [String] = []
        for seed in UInt64(31)...36 {
            var options = SimulationOptions.mixed(seed: seed)
            options.crashes = 2
            options.dropPerMille = max(options.dropPerMille, 100)
            options.byzantine = [2: [.forgedStateTransfer, .mutateIntegers]]
            let report = Simulation(options: options).run()
            rejected += report.forgedTransfersRejected
            if !report.passed {
                failed.append("\(report.summary)\n  \(report.failures.joined(separator: "\n  "))\n  replay: \(options.replayCommand)")
            }
        }
        #expect(failed.isEmpty, "\(failed.joined(separator: "\n"))")
        #expect(rejected >= 4, "only \(rejected) lying answers were served and rejected")
    }

    /// A lying primary is replaced: with no network faults, each primary attack ends view 0.
    @Test(arguments: [Behaviour.equivocate, .forgedRequest, .wrongTxRoot, .wrongHistoryRoot, .wrongPrevHash, .timestampAhead,
                      .timestampBehind, .withholdPrePrepares, .skipHeights, .silent, .invalidSignatures])
    func aLyingPrimaryIsReplaced(behaviour: Behaviour) {
        var options = SimulationOptions(seed: 5)
        options.byzantine = [0: [behaviour]]
        let report = Simulation(options: options).run()
        #expect(report.passed, "\(report.failures)")
        #expect(report.maxView >= 1, "\(report.summary)")
    }

    /// A primary that holds every proposal back to just under the view-change timeout is
    /// caught by the backups' turnaround monitor, long before that timeout; an honest primary
    /// on the same network is never suspected.
    @Test func aSlowPrimaryIsReplacedByTurnaroundMonitoring() {
        var honest = SimulationOptions(seed: 5)
        honest.clients = 8
        let fair = Simulation(options: honest).run()
        #expect(fair.passed, "\(fair.failures)")
        #expect(fair.slowPrimarySuspicions == 0 && fair.maxView == 0, "\(fair.summary)")

        honest.byzantine = [0: [.slowPrimary]]
        let slow = Simulation(options: honest).run()
        #expect(slow.passed, "\(slow.failures)")
        #expect(slow.slowPrimarySuspicions >= 2 && slow.maxView >= 1, "\(slow.summary)")
        // The primary holds every proposal back 300 ms. Unchecked, clients of this run wait
        // 463 ms on average (fault-free: 9 ms); caught after two windows of 16, the mean stays
        // under half of one hold.
        #expect(slow.meanLatencyMs < 150, "\(slow.summary)")
    }

    /// f = 2 of 7 replicas lying at once, in different ways.
    @Test func twoOfSevenByzantine() {
        var options = SimulationOptions.mixed(seed: 21, replicas: 7)
        options.byzantine = [0: [.equivocate, .lyingCheckpoints], 3: [.conflictingVotes, .forgedPreparedCertificate, .floodFuture]]
        let report = Simulation(options: options).run()
        #expect(report.passed, "\(report.failures)\n  replay: \(options.replayCommand)")
    }

    /// Twins: a second process with the same validator key and id, each with its own state,
    /// both reached by everything sent to that replica; as primary and as a backup.
    @Test(arguments: [0, 1])
    func twinsCannotBreakSafety(replica: Int) {
        var failed: [String] = []
        for seed in UInt64(31)...33 {
            var options = SimulationOptions.mixed(seed: seed)
            options.twins = replica
            let report = Simulation(options: options).run()
            if !report.passed {
                failed.append("\(report.summary)\n  \(report.failures.joined(separator: "\n  "))\n  replay: \(options.replayCommand)")
            }
        }
        #expect(failed.isEmpty, "\(failed.joined(separator: "\n"))")
    }

    /// The checkers themselves: Wing–Gong refutes a history no sequential store could give.
    @Test func theLinearizabilityCheckerRefutesImpossibleHistories() {
        typealias Op = HistoryChecker.Operation
        let key = Array("k".utf8)
        let write = Op(operation: .put(key: key, value: [1]), result: .written(version: 3), invokedMs: 0, completedMs: 10)
        let readNew = Op(operation: .get(key: key), result: .value([1], version: 3), invokedMs: 20, completedMs: 30)
        let readOld = Op(operation: .get(key: key), result: .value(nil, version: 0), invokedMs: 20, completedMs: 30)
        let concurrentOld = Op(operation: .get(key: key), result: .value(nil, version: 0), invokedMs: 5, completedMs: 30)
        #expect(HistoryChecker.isLinearizable([write, readNew]))
        // A read that starts after the write completed must see it.
        #expect(!HistoryChecker.isLinearizable([write, readOld]))
        // A read concurrent with the write may see either.
        #expect(HistoryChecker.isLinearizable([write, concurrentOld]))
        // Two concurrent reads may not see new-then-old once the first completed before the second began.
        let late = Op(operation: .get(key: key), result: .value(nil, version: 0), invokedMs: 40, completedMs: 50)
        #expect(!HistoryChecker.isLinearizable([write, readNew, late]))
        // A cas that succeeded though the version did not match.
        let cas = Op(operation: .cas(key: key, expectedVersion: 7, value: [2]), result: .written(version: 9), invokedMs: 20,
                     completedMs: 30)
        #expect(!HistoryChecker.isLinearizable([write, cas]))
    }
}
