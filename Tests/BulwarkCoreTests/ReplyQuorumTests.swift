import BulwarkCore
import Testing

/// The client's acceptance rule (SPEC.md §8.5, §15).
@Suite struct ReplyQuorumTests {
    let config = ClusterConfig.testGenesis(cluster: ClusterID(raw: Bytes32(Array(repeating: 0x31, count: 32))!))
    func reply(_ result: [UInt8], height: Height = 7) -> ClientReply { ClientReply(requestID: 1, height: height, result: result) }

    /// Found in Bulwark: with a twin and one honest replica briefly behind, both answered a read
    /// with `rateLimited` (their own pools were full); the client gave up on f+1 matching
    /// refusals while the other replicas were serving. A momentary refusal is no verdict.
    @Test func rateLimitedFromFPlusOneReplicasIsNoVerdict() {
        var quorum = ReplyQuorum()
        #expect(quorum.received(.rateLimited, from: 0, config: config) == nil)
        #expect(quorum.received(.rateLimited, from: 1, config: config) == nil)
        #expect(quorum.received(reply([1]), from: 2, config: config) == nil)
        #expect(quorum.received(reply([1]), from: 3, config: config) == .accepted(reply([1])))
        // Out of time with only refusals, the client says why rather than only "timed out".
        var refusedEverywhere = ReplyQuorum()
        for replica in 0..<4 { _ = refusedEverywhere.received(.rateLimited, from: ReplicaID(replica), config: config) }
        #expect(refusedEverywhere.refusalAtDeadline(config: config) == .rateLimited)
        #expect(ReplyQuorum().refusalAtDeadline(config: config) == nil)
    }

    @Test func refusalsEveryHonestReplicaMustGiveEndTheRequest() {
        for refusal: RequestRefusal in [.malformed, .badSignature, .unknownClient, .tooLarge(bytes: 9, limit: 8)] {
            var quorum = ReplyQuorum()
            #expect(quorum.received(refusal, from: 0, config: config) == nil, "one replica could be lying")
            #expect(quorum.received(refusal, from: 1, config: config) == .refused(refusal))
        }
        // Different refusals do not add up.
        var mixed = ReplyQuorum()
        #expect(mixed.received(.malformed, from: 0, config: config) == nil)
        #expect(mixed.received(.badSignature, from: 1, config: config) == nil)
    }

    @Test func onlyMatchingResultsAtOneHeightFromValidatorsCount() {
        var quorum = ReplyQuorum()
        #expect(quorum.received(reply([1], height: 7), from: 0, config: config) == nil)
        #expect(quorum.received(reply([1], height: 8), from: 1, config: config) == nil)
        #expect(quorum.received(reply([2], height: 7), from: 2, config: config) == nil)
        // A replica that is not a validator of the known epoch vouches for nothing.
        #expect(quorum.received(reply([1], height: 7), from: 9, config: config) == nil)
        // A replica's newer answer replaces its older one.
        #expect(quorum.received(reply([1], height: 7), from: 1, config: config) == .accepted(reply([1], height: 7)))
    }
}

/// The client's acceptance rule for fast reads (SPEC.md §8.6).
@Suite struct FastReadQuorumTests {
    let config = ClusterConfig.testGenesis(cluster: ClusterID(raw: Bytes32(Array(repeating: 0x46, count: 32))!))
    func answer(_ value: UInt8, height: Height = 9) -> FastReadQuorum.Answer {
        .init(height: height, result: OperationResult.value([value], version: 3).encoded())
    }

    /// f+1 is enough for an ordered result, not for a fast read: 2f+1 must agree.
    @Test func twoFPlusOneMustAgreeOnResultAndHeight() {
        var quorum = FastReadQuorum()
        #expect(quorum.received(answer(1), from: 0, config: config) == nil)
        #expect(quorum.received(answer(1), from: 1, config: config) == nil)
        #expect(quorum.received(answer(1, height: 10), from: 2, config: config) == nil, "another height")
        #expect(!quorum.mustOrder(config: config))
        #expect(quorum.received(answer(1), from: 3, config: config) == answer(1))
    }

    @Test func onceNoQuorumCanFormTheReadIsOrdered() {
        var quorum = FastReadQuorum()
        _ = quorum.received(answer(1), from: 0, config: config)
        _ = quorum.received(answer(2), from: 1, config: config)
        #expect(!quorum.mustOrder(config: config), "the two yet to answer could still make three")
        _ = quorum.received(answer(1, height: 10), from: 2, config: config)
        #expect(quorum.mustOrder(config: config), "at most 2 of 4 can still agree, 3 needed")
        var strangers = FastReadQuorum()
        for _ in 0..<3 { #expect(strangers.received(answer(1), from: 77, config: config) == nil) }
        #expect(!strangers.mustOrder(config: config))
    }
}
