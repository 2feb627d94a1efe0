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
    /// does not own into every block: backups order it (its signature is good), and the
    /// ledger denies it at execution, every time.
    @Test func aByzantinePrimaryCannotGetAnUnauthorizedRequestExecuted() {
        var failed: [String] = []
        var denied = 0
        for seed in UInt64(31)...38 {
            var options = SimulationOptions.mixed(seed: seed)
            options.policy = true
            options.byzantine = [0: [.unauthorizedRequest]]
            let (report, failure) = options.runReporting()
            if let failure { failed.append(failure) }
            denied += report.replicaRequestsDenied
        }
        #expect(failed.isEmpty, "\(failed.joined(separator: "\n"))")
        #expect(denied >= 8, "the Byzantine primary's requests reached the ledger only \(denied) times")
    }
}
