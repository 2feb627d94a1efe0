import BulwarkAdversary
import BulwarkCore
import BulwarkShell
import BulwarkSimulation
import Testing

/// A replica whose disk is wiped in the middle of the load, restarted with `--rejoin`, while
/// a twin of another replica (a second process with its key) is active (SPEC.md §14.4). The
/// checkers include one that no honest replica ever signs two different messages in one
/// place, its life before the wipe included.
@Suite struct RejoinSimulationTests {
    static func run(seeds: ClosedRange<UInt64>, twins: Int, unguarded: Bool) -> [SimulationReport] {
        seeds.map { seed in
            var options = SimulationOptions.mixed(seed: seed)
            options.twins = twins
            options.wipe = true
            options.unguardedRejoin = unguarded
            return Simulation(options: options).run()
        }
    }

    static func describe(_ report: SimulationReport) -> String {
        "\(report.summary)\n  \(report.failures.joined(separator: "\n  "))\n  replay: \(report.options.replayCommand)"
    }

    @Test func aWipedReplicaRejoinsWithoutSigningTwice() {
        let reports = Self.run(seeds: 11...22, twins: 0, unguarded: false)
        let failed = reports.filter { !$0.passed }.map(Self.describe)
        #expect(failed.isEmpty, "\(failed.joined(separator: "\n"))")
        #expect(reports.allSatisfy { $0.wipedAtHeight != nil && $0.signedMessagesChecked > 0 })
        // Every wiped replica caught up (the liveness checker: equal heights at the end). It
        // votes again after the first view change past its floor, which only some runs have
        // once it caught up (a cluster that keeps its view keeps it following silently).
        #expect(reports.contains { $0.rejoined }, "\(reports.map(\.rejoined))")
    }

    /// Issue 29 item 6: a Byzantine replica answers the rejoining replica's progress query with
    /// an epoch and a view it cannot prove. The floor holds only what the answers prove, so the
    /// rejoin is delayed a bounded amount at most, and no replica signs twice.
    @Test func lyingProgressDoesNotMuteARejoiningReplica() {
        let reports = (UInt64(11)...22).map { seed in
            var options = SimulationOptions.mixed(seed: seed)
            options.wipe = true
            options.byzantine = [3: [.lyingProgress]]
            return Simulation(options: options).run()
        }
        let failed = reports.filter { !$0.passed }.map(Self.describe)
        #expect(failed.isEmpty, "\(failed.joined(separator: "\n"))")
        for report in reports {
            guard let floor = report.rejoinFloor else { continue }
            #expect(floor.epoch == 0 && floor.view <= report.maxView + ReplicaShell.rejoinViewsAheadMax,
                    "seed \(report.options.seed): floor \(floor) beyond what any answer proves (view \(report.maxView))")
        }
        #expect(reports.contains { $0.rejoinFloor != nil })
    }

    /// The negative control: the same runs with the wiped replica restarted as a new
    /// cluster's, without a floor. It signs again where its earlier life signed.
    @Test func withoutTheFloorTheSimulatorCatchesTheReplicaSigningTwice() {
        let reports = Self.run(seeds: 11...22, twins: 0, unguarded: true)
        let caught = reports.filter { $0.failures.contains { $0.hasPrefix("signing:") } }
        #expect(!caught.isEmpty, "no run caught the unguarded replica: \(reports.map(\.summary))")
    }
}
