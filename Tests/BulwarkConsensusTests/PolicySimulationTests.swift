import BulwarkAdversary
import BulwarkConsensus
import BulwarkCore
@testable import BulwarkSimulation
import Testing

/// Client permissions under the seed's mix of faults (SPEC.md §19): a closed cluster whose
/// admin binds the clients and changes the policy six times while the load runs. Besides
/// agreement, validity, exactly-once, durability, liveness, linearizability and the bank
/// invariant, a checker replays the ledger against a plain model of the policy: nothing the
/// policy denies ever executed successfully, and nothing it allows was denied.
@Suite struct PolicySimulationTests {
    @Test func policyChangesUnderLoadHoldEveryProperty() {
        var failed: [String] = []
        var changes = 0, denials = 0
        for seed in UInt64(1)...12 {
            var options = SimulationOptions.mixed(seed: seed)
            options.policy = true
            let (report, failure) = options.runReporting()
            if let failure { failed.append(failure) }
            changes += report.policyChanges
            denials += report.permissionDenials
        }
        #expect(failed.isEmpty, "\(failed.joined(separator: "\n"))")
        #expect(changes == 12 * 6, "\(changes) policy changes applied in 12 runs of 6")
        #expect(denials > 12, "only \(denials) requests were denied: the load does not exercise the policy")
    }

    /// A Byzantine primary that puts its own validly signed request taking from an account it
    /// does not own into every block. Its key is a stranger to the policy, so backups refuse
    /// the block before ordering it (SPEC.md §19.4): the request never reaches the ledger (it
    /// used to be ordered and denied at execution, leaving a client record each time), and the
    /// cluster replaces the primary and goes on.
    @Test func aByzantinePrimaryCannotGetAStrangersRequestOrdered() {
        var failed: [String] = []
        var refused: UInt64 = 0
        for seed in UInt64(31)...38 {
            var options = SimulationOptions.mixed(seed: seed)
            options.policy = true
            options.byzantine = [0: [.unauthorizedRequest]]
            let (report, failure) = options.runReporting()
            if let failure { failed.append(failure) }
            #expect(report.replicaRequestsDenied == 0, "seed \(seed): a replica's own request reached the ledger")
            refused += report.strangersRefused
        }
        #expect(failed.isEmpty, "\(failed.joined(separator: "\n"))")
        #expect(refused >= 8, "honest backups refused the Byzantine primary's proposals only \(refused) times")
    }
}
