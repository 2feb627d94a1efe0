import BulwarkCore
import BulwarkSimulation
import BulwarkStorage
import BulwarkVerify
import Foundation
import Testing

/// Ledgers from simulated clusters with faults: every replica's ledger passes the auditor,
/// all agree, and they end in the same ledger digest.
@Suite struct SimulatedLedgerTests {
    @Test(arguments: [UInt64(3), 17, 50])
    func everyReplicasLedgerFromASimulationVerifies(seed: UInt64) throws {
        let simulation = Simulation(options: SimulationOptions.mixed(seed: seed))
        let report = simulation.run()
        #expect(report.passed, "\(report.failures)")
        var digests: [LedgerDigest] = []
        for replica in 0..<4 {
            let fs = SimulatedFileSystem()
            try simulation.writeLedger(replica: replica, to: "/r\(replica)/blocks", fileSystem: fs)
            let audit = LedgerAudit(config: simulation.clusterConfig, threads: 2).audit(directory: "/r\(replica)/blocks", fileSystem: fs)
            #expect(audit.passed, "seed \(seed) replica \(replica): \(String(describing: audit.problem))")
            #expect(audit.heights == report.heights[replica])
            #expect(audit.executionCertificates > 0)
            digests.append(LedgerDigest(height: audit.tip.height, root: audit.tip.history.root))
        }
        #expect(Set(digests.map(\.description)).count == 1)
    }
}
