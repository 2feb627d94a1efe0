import BulwarkCore
@testable import BulwarkShell
import Testing

/// When a replica takes a state snapshot: at checkpoint-aligned heights of its interval, and
/// only once the requests run since the last snapshot outweigh that snapshot's size.
@Suite struct SnapshotPolicyTests {
    @Test func theIntervalIsRoundedUpToACheckpointAndZeroTurnsSnapshotsOff() {
        #expect(StateSnapshots(directory: "d", requested: 1000, checkpointInterval: 16).interval == 1008)
        #expect(StateSnapshots(directory: "d", requested: 1024, checkpointInterval: 16).interval == 1024)
        let off = StateSnapshots(directory: "d", requested: 0, checkpointInterval: 16, requestsSince: 1_000_000)
        #expect(off.interval == 0 && !off.isDue(at: 1024))
    }

    @Test func aLargeStateWaitsForEnoughRequests() {
        var policy = StateSnapshots(directory: "d", requested: 32, checkpointInterval: 16, lastBytes: 200_000)
        #expect(!policy.isDue(at: 32), "no request since a 200 kB snapshot")
        policy.requestsSince = 999
        #expect(!policy.isDue(at: 64))
        policy.requestsSince = 1000
        #expect(policy.isDue(at: 64))
        #expect(!policy.isDue(at: 48), "not a height of the interval")
        #expect(StateSnapshots(directory: "d", requested: 32, checkpointInterval: 16).isDue(at: 32), "the first snapshot")
    }
}
