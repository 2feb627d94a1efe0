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

/// Which validators check a client's signature inside a PRE-PREPARE (SPEC.md §14.1).
@Suite struct ProposalVerificationTests {
    /// All but q − f − 1 validators check each request: 3 of 4, 5 of 7, and any quorum holds
    /// f + 1 of them. Who skips moves with the request, so each validator saves its share.
    @Test(arguments: [4, 5, 7, 10])
    func everyQuorumHoldsFPlusOneCheckers(n: Int) throws {
        let keys = (0..<n).map { PrivateKey(seed: [UInt8($0 + 1)] + Array(repeating: 0x7a, count: 31))!.publicKey }
        let config = try ClusterConfig.layout(keys: keys, host: "127.0.0.1", basePort: 7000,
                                              clusterID: ClusterID(raw: Bytes32(Array(repeating: 0x7a, count: 32))!))
        let client = PrivateKey(seed: Array(repeating: 0x3c, count: 32))!
        var skipped = [Int](repeating: 0, count: n)
        for id in 1...200 {
            let request = Request.signed(by: client, cluster: config.clusterID, requestID: UInt64(id), operation: .get(key: [1]))
            let checkers = config.validators.filter { config.verifiesInProposal(request, replica: $0.id) }
            #expect(checkers.count == n - config.signatureTrustersPerRequest)
            // The smallest overlap of a quorum with the checkers leaves f + 1 of them.
            #expect(config.quorum + checkers.count - n >= config.f + 1)
            for (i, validator) in config.validators.enumerated() where !checkers.contains(validator) { skipped[i] += 1 }
        }
        #expect(skipped.allSatisfy { $0 > 0 }, "\(skipped)")
        #expect(config.verifiesInProposal(Request.signed(by: client, cluster: config.clusterID, requestID: 1, operation: .get(key: [1])),
                                          replica: 999), "a replica outside the configuration checks everything")
    }
}
