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
    func run(_ options: SimulationOptions) -> (SimulationReport, String?) {
        let report = Simulation(options: options).run()
        guard report.passed else {
            return (report, "\(report.summary)\n  \(report.failures.joined(separator: "\n  "))\n  replay: \(options.replayCommand)")
        }
        return (report, nil)
    }

    @Test(arguments: [4, 5])
    func changesHoldEveryProperty(replicas: Int) {
        var failed: [String] = []
        var changed = 0, removed = 0
        for seed in UInt64(1)...10 {
            var options = SimulationOptions.mixed(seed: seed, replicas: replicas)
            options.reconfigure = true
            let (report, failure) = run(options)
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
            if let failure = run(options).1 { failed.append(failure) }
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
            let (report, failure) = run(options)
            if let failure { failed.append(failure) }
            viewChanges += report.viewChanges
        }
        #expect(failed.isEmpty, "\(failed.joined(separator: "\n"))")
        #expect(viewChanges > 0)
    }
}
