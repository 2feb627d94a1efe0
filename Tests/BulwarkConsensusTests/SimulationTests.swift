import BulwarkConsensus
import BulwarkCore
@testable import BulwarkSimulation
import Testing

/// Whole-cluster simulations over fixed seed ranges (DESIGN.md §7). Each seed draws its own
/// mix of loss (up to 20 %), duplication, reordering, partitions that heal, and crashes
/// (including mid-step and of the primary); every checker must pass. A failure prints the
/// command that replays the seed.
@Suite struct SimulationTests {
    static func failures(seeds: ClosedRange<UInt64>, replicas: Int, adjust: (inout SimulationOptions) -> Void = { _ in })
        -> [String]
    {
        var failed: [String] = []
        for seed in seeds {
            var options = SimulationOptions.mixed(seed: seed, replicas: replicas)
            adjust(&options)
            let report = Simulation(options: options).run()
            if !report.passed {
                failed.append("\(report.summary)\n  \(report.failures.joined(separator: "\n  "))\n  replay: \(options.replayCommand)")
            }
        }
        return failed
    }

    /// Seeds 1...200 at n = 4, in chunks that run in parallel.
    @Test(arguments: stride(from: UInt64(1), through: 200, by: 25).map { $0...($0 + 24) })
    func fourReplicas(seeds: ClosedRange<UInt64>) {
        let failed = Self.failures(seeds: seeds, replicas: 4)
        #expect(failed.isEmpty, "\(failed.joined(separator: "\n"))")
    }

    @Test(arguments: [UInt64(1)...10, 11...20])
    func sevenReplicas(seeds: ClosedRange<UInt64>) {
        let failed = Self.failures(seeds: seeds, replicas: 7)
        #expect(failed.isEmpty, "\(failed.joined(separator: "\n"))")
    }

    /// A primary crash in the middle of the load leads to a view change and continued commits
    /// (the checker fails a run where either is missing).
    @Test func primaryCrashMidLoadLeadsToAViewChange() {
        var reports: [SimulationReport] = []
        let failed = Self.failures(seeds: 1001...1020, replicas: 4) { $0.crashPrimary = true }
        for seed in UInt64(1001)...1003 {
            var options = SimulationOptions.mixed(seed: seed)
            options.crashPrimary = true
            reports.append(Simulation(options: options).run())
        }
        #expect(failed.isEmpty, "\(failed.joined(separator: "\n"))")
        #expect(reports.allSatisfy { $0.primaryCrashedAtHeight != nil && $0.maxView > 0 })
    }

    @Test func aSeedReplaysBitForBit() {
        let options = SimulationOptions.mixed(seed: 77)
        let a = Simulation(options: options).run()
        let b = Simulation(options: options).run()
        #expect(a.summary == b.summary)
        #expect(a.heights == b.heights && a.messagesSent == b.messagesSent && a.virtualTimeMs == b.virtualTimeMs)
    }

    /// Negative controls: the checkers catch a replica holding a different block, a ledger
    /// with a broken certificate, and a client result the ledger does not give.
    @Test func theCheckersCatchViolations() throws {
        var options = SimulationOptions(seed: 5)
        options.requestsPerClient = 6
        let simulation = Simulation(options: options)
        #expect(simulation.run().passed)

        let honest = simulation.nodes[1].log[2]
        var forked = honest
        forked.block.requests = []
        forked.block.header.txRoot = MerkleTree.emptyRoot
        simulation.nodes[1].log[2] = forked
        simulation.report.failures = []
        SimulationChecker(simulation: simulation).check()
        #expect(simulation.report.failures.contains { $0.hasPrefix("agreement") })
        #expect(simulation.report.failures.contains { $0.hasPrefix("chain") })

        simulation.nodes[1].log[2] = honest
        var weak = honest
        weak.certificate.votes = Array(weak.certificate.votes.prefix(simulation.config.quorum - 1))
        simulation.nodes[2].log[2] = weak
        simulation.report.failures = []
        SimulationChecker(simulation: simulation).check()
        #expect(simulation.report.failures.contains { $0.hasPrefix("chain") && $0.contains("quorum") })

        simulation.nodes[2].log[2] = honest
        simulation.clients[0].completed[0].result = OperationResult.rejected("made up").encoded()
        simulation.report.failures = []
        SimulationChecker(simulation: simulation).check()
        #expect(simulation.report.failures.contains { $0.hasPrefix("results") })
    }
}
