import BulwarkCore
import Testing

/// Where a client sends a request (SPEC.md §8.5): the primary it believes current first, then
/// every validator; the believed view is what f+1 validators reported.
@Suite struct RequestRoutingTests {
    let config = ClusterConfig.testGenesis(cluster: ClusterID(raw: Bytes32(Array(repeating: 0x52, count: 32))!))

    @Test func theFirstSendingGoesToThePrimaryAndEveryLaterOneToAll() {
        var routing = RequestRouting()
        #expect(routing.targets(round: 0, config: config) == [config.primary(of: 0)])
        #expect(routing.targets(round: 1, config: config) == config.validators.map(\.id))
        #expect(routing.targets(round: 5, config: config) == config.validators.map(\.id))
        for replica: ReplicaID in [0, 1] { routing.heard(view: 2, from: replica, config: config) }
        #expect(routing.view == 2)
        #expect(routing.targets(round: 0, config: config) == [config.primary(of: 2)])
        #expect(RequestRouting.broadcastAfterMs(config) == config.parameters.viewChangeTimeoutMs / 8)
    }

    /// f liars cannot move the client: a view counts once f+1 validators reported it or more.
    @Test func fReplicasCannotSteerTheClient() {
        var routing = RequestRouting()
        routing.heard(view: 1 << 60, from: 3, config: config)
        #expect(routing.view == 0)
        routing.heard(view: 1, from: 0, config: config)
        #expect(routing.view == 1, "replica 0 and the liar both report at least view 1")
        routing.heard(view: 1 << 60, from: 99, config: config)  // not a validator
        #expect(routing.view == 1)
    }

    /// Each validator's newest report counts: a new epoch's view 0 brings the client back.
    @Test func theBelievedViewFallsWhenFPlusOneReportLower() {
        var routing = RequestRouting()
        for replica: ReplicaID in [0, 1, 2, 3] { routing.heard(view: 7, from: replica, config: config) }
        #expect(routing.view == 7)
        routing.heard(view: 0, from: 0, config: config)
        routing.heard(view: 0, from: 1, config: config)
        #expect(routing.view == 7, "two validators still report view 7")
        routing.heard(view: 0, from: 2, config: config)
        #expect(routing.view == 0)
    }
}
