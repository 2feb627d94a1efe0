import BulwarkAdversary
import BulwarkConsensus
import BulwarkCore
@testable import BulwarkSimulation
import Testing

/// Configuration changes under the seed's mix of faults (drops, duplicates, partitions,
/// crashes, a crashed primary): three admins approve two competing proposals, one replacing
/// replica 3's key (and, with five replicas, removing replica 4, which keeps re-sending its
/// old messages), the other changing parameters. Every checker holds across the epochs:
/// agreement, chains checked against each epoch's validators, validity, exactly-once,
/// durability, liveness, linearizability and the bank invariant.
@Suite struct ReconfigurationSimulationTests {
    @Test(arguments: [4, 5])
    func changesHoldEveryProperty(replicas: Int) {
        var failed: [String] = []
        var changed = 0, removed = 0
        for seed in UInt64(1)...10 {
            var options = SimulationOptions.mixed(seed: seed, replicas: replicas)
            options.reconfigure = true
            let (report, failure) = options.runReporting()
            if let failure { failed.append(failure) }
            if report.epochsEntered >= 1 { changed += 1 }
            removed += report.replicasRemoved
        }
        #expect(failed.isEmpty, "\(failed.joined(separator: "\n"))")
        #expect(changed == 10, "only \(changed) of 10 runs reached the next epoch")
        if replicas == 5 { #expect(removed >= 1, "no run removed a replica") }
    }

    /// A Byzantine replica in the old set (and, unless removed, the new one) while the
    /// configuration changes: one that equivocates and votes for conflicting blocks, and one
    /// that lies about checkpoints and floods future views.
    @Test(arguments: [[Behaviour.equivocate, .conflictingVotes], [.lyingCheckpoints, .floodFuture]])
    func aByzantineReplicaDuringAChange(behaviours: [Behaviour]) {
        var failed: [String] = []
        for seed in UInt64(21)...26 {
            var options = SimulationOptions.mixed(seed: seed, replicas: 5)
            options.reconfigure = true
            options.byzantine = [1: Set(behaviours)]
            if let failure = options.runReporting().1 { failed.append(failure) }
        }
        #expect(failed.isEmpty, "\(failed.joined(separator: "\n"))")
    }

    /// Changes that land during view changes: the primary crashes in the middle of the load
    /// while the admins act, with messages lost and partitions.
    @Test func aChangeDuringViewChanges() {
        var failed: [String] = []
        var viewChanges: UInt64 = 0
        for seed in UInt64(41)...46 {
            var options = SimulationOptions.mixed(seed: seed)
            options.reconfigure = true
            options.crashPrimary = true
            options.partitions = 1
            let (report, failure) = options.runReporting()
            if let failure { failed.append(failure) }
            viewChanges += report.viewChanges
        }
        #expect(failed.isEmpty, "\(failed.joined(separator: "\n"))")
        #expect(viewChanges > 0)
    }

    /// 4→7→4: three replicas outside cluster.json join as `bulwark node --join` does (fetching
    /// and checking the ledger as clients, some starting late: from far behind), are added,
    /// then removed again; a joiner whose epoch came and went never starts.
    @Test func growAndShrinkWithJoiners() {
        var failed: [String] = []
        var joined = 0, shrunk = 0
        for seed in UInt64(1)...10 {
            var options = SimulationOptions.mixed(seed: seed)
            options.grow = true
            let (report, failure) = options.runReporting()
            if let failure { failed.append(failure) }
            joined += report.replicasJoined
            if report.epochsEntered >= 2 { shrunk += 1 }
        }
        #expect(failed.isEmpty, "\(failed.joined(separator: "\n"))")
        #expect(joined >= 10, "only \(joined) replicas joined in 10 runs")
        #expect(shrunk >= 8, "only \(shrunk) of 10 runs shrank back to four replicas")
    }

    /// A run where a scheduled change met view changes with a replica down for good (its
    /// write-ahead log corrupted): each new primary must get a full timeout to drive the epoch
    /// to its end, or the backups change view again at once, forever.
    @Test func aNewPrimaryGetsAFullTimeoutToReachTheEpochsEnd() {
        var options = SimulationOptions(seed: 9)
        (options.clients, options.requestsPerClient, options.dropPerMille, options.duplicatePerMille) = (5, 15, 153, 75)
        (options.jitterMsMax, options.partitions, options.crashes) = (29, 0, 1)
        options.diskFaults = true
        options.grow = true
        let (report, failure) = options.runReporting()
        #expect(failure == nil, "\(failure ?? "")")
        #expect(report.epochsEntered >= 1)
    }
}

extension SimulationOptions {
    /// Runs the simulation these options describe: its report, and on failure a message with
    /// every failure and the command that replays the run.
    func runReporting() -> (SimulationReport, String?) {
        let report = Simulation(options: self).run()
        guard report.passed else {
            return (report, "\(report.summary)\n  \(report.failures.joined(separator: "\n  "))\n  replay: \(replayCommand)")
        }
        return (report, nil)
    }
}
