import BulwarkConsensus
import BulwarkCore
@testable import BulwarkSimulation
import Testing

/// Whole-cluster simulations over fixed seed ranges (ARCHITECTURE.md §7). Each seed draws its own
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

    /// Clients send each request to the primary alone (`RequestRouting`, PBFT §4.1): on a
    /// fault-free network backups see it only inside the PRE-PREPARE, so a request crosses the
    /// network about once (with every request sent to all four, four times).
    @Test func requestsGoToThePrimaryAlone() {
        var options = SimulationOptions(seed: 5)
        options.clients = 8
        let report = Simulation(options: options).run()
        #expect(report.passed, "\(report.failures)")
        #expect(report.requestsCompleted > 0 && report.maxView == 0, "\(report.summary)")
        let perRequest = Double(report.clientRequestsSent) / Double(report.requestsCompleted)
        #expect(perRequest < 1.2, "\(report.clientRequestsSent) request frames for \(report.requestsCompleted) requests")
    }

    /// The simulated replicas take the frames of one instant in one `handle` call, as
    /// production's loop drains its inbox: the group-commit path runs under every seed, and
    /// the simulated clients settle requests by the production rule (`ReplyQuorum`).
    @Test func framesOfOneInstantReachTheShellTogether() {
        let report = Simulation(options: .mixed(seed: 3)).run()
        #expect(report.passed, "\(report.failures)")
        #expect(report.batchedDeliveries > 100, "\(report.summary)")
        #expect(report.requestsCompleted > 0)
    }

    /// Same seed, same run: the same report and byte-identical disks (ledgers, WALs, key
    /// histories, snapshots), disk faults included.
    @Test(arguments: [false, true])
    func aSeedReplaysBitForBit(diskFaults: Bool) {
        var options = SimulationOptions.mixed(seed: 77)
        options.diskFaults = diskFaults
        let first = Simulation(options: options), second = Simulation(options: options)
        let a = first.run(), b = second.run()
        #expect(a.passed && b.passed)
        #expect(a.summary == b.summary)
        #expect(a.heights == b.heights && a.messagesSent == b.messagesSent && a.virtualTimeMs == b.virtualTimeMs)
        for (x, y) in zip(first.nodes, second.nodes) {
            #expect(x.fileSystem.paths == y.fileSystem.paths)
            #expect(x.fileSystem.paths.allSatisfy { x.fileSystem.bytes($0) == y.fileSystem.bytes($0) })
            #expect(x.fileSystem.paths.contains { $0.hasSuffix(".log") && $0.contains("/blocks/") })
        }
    }

    /// Disk faults in every seed: each kind is injected somewhere in the range, scrubbing finds
    /// the corrupted segments and the replicas repair them (their ledgers pass the offline
    /// audit: a checker), a corrupted WAL keeps its replica down until the operator moves the
    /// log aside and starts it with --rejoin, and every checker passes.
    @Test(arguments: [UInt64(1)...30, 31...60])
    func diskFaults(seeds: ClosedRange<UInt64>) {
        var reports: [SimulationReport] = []
        var failed: [String] = []
        for seed in seeds {
            var options = SimulationOptions.mixed(seed: seed)
            options.diskFaults = true
            let report = Simulation(options: options).run()
            reports.append(report)
            if !report.passed {
                failed.append("\(report.summary)\n  \(report.failures.joined(separator: "\n  "))\n  replay: \(options.replayCommand)")
            }
        }
        #expect(failed.isEmpty, "\(failed.joined(separator: "\n"))")
        func total(_ count: (SimulationReport) -> Int) -> Int { reports.map(count).reduce(0, +) }
        #expect(total(\.corruptedSegments) > 0 && total(\.corruptedSnapshots) > 0 && total(\.corruptedWALs) > 0)
        #expect(total(\.fullDisks) > 0 && total(\.failingOpens) > 0)
        #expect(total(\.damageFound) > 0, "no corrupted segment was found by scrubbing")
        #expect(total(\.rejoinsAfterDamagedLog) > 0, "no replica refused to start on a corrupted WAL, to rejoin once it was moved aside")
    }

    /// Seeds that once failed, replayed with disk faults; each signed two PRE-PREPAREs for
    /// one height (the signing checker). 448: a new primary adopted a later checkpoint while
    /// installing its view; 1102: damage cut a primary's ledger back below its log's last
    /// compaction; 1589: a rotted last record of the log was dropped as a torn tail.
    /// (`ViewChangeTests` and `WriteAheadLogTests` hold the unit cases.) 195: the run ended
    /// before scrubbing reached a flipped bit in one of 80 sealed segments, and the checker
    /// audited a ledger not yet repaired (a run now goes on until every damaged replica found
    /// its damage).
    @Test(arguments: [UInt64(448), 1102, 1589, 195])
    func aSeedThatOnceFailedPasses(seed: UInt64) {
        let failed = Self.failures(seeds: seed...seed, replicas: 4) { $0.diskFaults = true }
        #expect(failed.isEmpty, "\(failed.joined(separator: "\n"))")
    }

    /// State transfer and consensus race all the time under loss: a transfer's target is often
    /// reached by consensus first. Every such run must stay live (the liveness checker).
    @Test func stateTransfersThatConsensusOvertakesEnd() {
        var overtaken = 0
        var failed: [String] = []
        for seed in UInt64(1)...10 {
            let report = Simulation(options: .mixed(seed: seed)).run()
            overtaken += report.transfersOvertaken
            if !report.passed { failed.append(report.summary + "\n  " + report.failures.joined(separator: "\n  ")) }
        }
        #expect(failed.isEmpty, "\(failed.joined(separator: "\n"))")
        #expect(overtaken > 0)
    }

    /// Negative controls: the checkers catch a replica holding a different block, a ledger
    /// with a broken certificate, and a client result the ledger does not give.
    @Test func theCheckersCatchViolations() throws {
        var options = SimulationOptions(seed: 5)
        options.requestsPerClient = 6
        let simulation = Simulation(options: options)
        #expect(simulation.run().passed)

        var checker = SimulationChecker(simulation: simulation)
        let honest = checker.ledgers[1]![2]
        var forked = honest
        forked.block.requests = []
        forked.block.header.txRoot = MerkleTree.emptyRoot
        checker.ledgers[1]![2] = forked
        simulation.report.failures = []
        checker.check()
        #expect(simulation.report.failures.contains { $0.hasPrefix("agreement") })
        #expect(simulation.report.failures.contains { $0.hasPrefix("chain") })

        checker.ledgers[1]![2] = honest
        var weak = honest
        weak.certificate.votes = Array(weak.certificate.votes.prefix(simulation.config.quorum - 1))
        checker.ledgers[2]![2] = weak
        simulation.report.failures = []
        checker.check()
        #expect(simulation.report.failures.contains { $0.hasPrefix("chain") && $0.contains("quorum") })

        checker.ledgers[2]![2] = honest
        simulation.clients[0].completed[0].result = OperationResult.rejected(.keyTooLong(bytes: 1, max: 0)).encoded()
        simulation.report.failures = []
        checker.check()
        #expect(simulation.report.failures.contains { $0.hasPrefix("results") })
    }

    /// Fast reads (SPEC.md §8.6) run in every seed: half the simulated gets go the fast path,
    /// and the linearizability checker judges them with everything else. A result no ledger
    /// state gives, or one from the past that breaks real-time order, is caught.
    @Test func fastReadsAreCheckedAgainstTheLedgerAndLinearizability() throws {
        var options = SimulationOptions(seed: 15)
        options.clients = 5
        let simulation = Simulation(options: options)
        let report = simulation.run()
        #expect(report.passed, "\(report.failures)")
        #expect(report.fastReads > 0, "\(report.summary)")

        let checker = SimulationChecker(simulation: simulation)
        let (c, i) = try #require(simulation.clients.indices.lazy.compactMap { c in
            simulation.clients[c].completed.firstIndex { $0.fastReadHeight != nil }.map { (c, $0) }
        }.first)
        let genuine = simulation.clients[c].completed[i]
        simulation.clients[c].completed[i].result = OperationResult.value(Array("never written".utf8), version: 1).encoded()
        simulation.report.failures = []
        checker.check()
        #expect(simulation.report.failures.contains { $0.hasPrefix("fast read") }, "\(simulation.report.failures)")
        simulation.clients[c].completed[i] = genuine

        // The same answer moved back in time, before the write of the value it returned began:
        // the ledger gives it at its height, but no legal order has it.
        let (lc, li) = try #require(readOfAWrittenValue(simulation))
        simulation.clients[lc].completed[li].invokedMs = 0
        simulation.clients[lc].completed[li].completedMs = 0
        simulation.report.failures = []
        checker.check()
        #expect(simulation.report.failures.contains { $0.hasPrefix("linearizability") }, "\(simulation.report.failures)")
    }

    /// A fast read that returned a value a put wrote after the start of the run.
    func readOfAWrittenValue(_ simulation: Simulation) -> (client: Int, index: Int)? {
        let all = simulation.clients.flatMap(\.completed)
        for (c, client) in simulation.clients.enumerated() {
            for (i, done) in client.completed.enumerated() where done.fastReadHeight != nil {
                guard case let .get(key) = done.request.operation,
                      case let .value(value?, _)? = try? OperationResult(decoding: done.result) else { continue }
                if all.contains(where: { $0.request.operation == .put(key: key, value: value) && $0.invokedMs > 0 }) {
                    return (c, i)
                }
            }
        }
        return nil
    }
}
