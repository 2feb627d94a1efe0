import BulwarkConsensus
import BulwarkCore
import BulwarkShell
import Testing

/// PBFT normal case (TOCS §4.2–4.3), one rule per test.
@Suite struct NormalCaseTests {
    @Test func aRequestCommitsAndExecutesOnEveryReplica() {
        var h = Harness()
        for i in 0..<4 { h.step(i, .clientRequest(h.request(1))) }
        h.run()
        #expect(h.executed.allSatisfy { $0.count == 1 && $0[0].requests == [h.request(1)] })
        #expect(Set(h.executed.map { $0[0].hash }).count == 1)
        #expect(h.replies.allSatisfy { $0.count == 1 && $0[0].requestID == 1 })
        #expect(h.replicas.allSatisfy { $0.chain.height == 1 && $0.lastExecuted == 1 })
    }

    /// How far each peer is comes only from votes it really signed.
    @Test func peerHeightsComeFromValidVotesOnly() {
        var h = Harness()
        for i in 0..<4 { h.step(i, .clientRequest(h.request(1))) }
        h.run()
        #expect(h.replicas[0].peerHeights == [1: 1, 2: 1, 3: 1])
        let pp = h.signedPrePrepare(view: 0, height: 3, requests: [], by: 0)
        var forged = h.commit(pp, from: 3)
        forged.replica = 2
        h.step(0, .message(.commit(forged)))
        #expect(h.replicas[0].rejections[.badSignature] == 1)
        #expect(h.replicas[0].peerHeights[2] == 1)
        h.step(0, .message(.commit(h.commit(pp, from: 2))))
        #expect(h.replicas[0].peerHeights[2] == 3)
    }

    /// An idle primary proposes a request at once; while its one block in flight is
    /// uncommitted, later requests gather (the batch delay does not release them), and the
    /// commit of that block sends them together.
    @Test func thePrimaryBatchesWhileABlockIsInFlight() {
        var h = Harness(batchRequestsMax: 8)
        for i in 0..<4 { h.step(i, .clientRequest(h.request(1))) }
        #expect(h.actions[0].prePrepares.map(\.block.requests) == [[h.request(1)]])
        for id: UInt64 in [2, 3] {
            for i in 0..<4 { h.step(i, .clientRequest(h.request(id))) }
        }
        h.fireBatch()
        #expect(h.actions[0].prePrepares.count == 1, "a partial batch left while a block was in flight")
        h.run()
        #expect(h.actions[0].prePrepares.map(\.block.requests) == [[h.request(1)], [h.request(2), h.request(3)]])
        #expect(h.executed.allSatisfy { $0.map(\.requests) == [[h.request(1)], [h.request(2), h.request(3)]] })
    }

    /// A full batch does not wait for the window; with a window of two blocks, a partial batch
    /// behind one block in flight waits for the batch delay.
    @Test func fullBatchesAndAWiderWindowDoNotWaitForCommits() {
        var h = Harness(batchRequestsMax: 2, blocksInFlightMax: 2)
        let first = h.step(0, .clientRequest(h.request(1)))
        #expect(first.prePrepares.count == 1 && first.prePrepares[0].block.requests == [h.request(1)])
        let out = h.step(0, .clientRequest(h.request(2)))
        #expect(out.prePrepares.isEmpty)
        #expect(out.contains { if case .setTimer(.batch, 5) = $0 { return true } else { return false } })
        let full = h.step(0, .clientRequest(h.request(3)))
        #expect(full.prePrepares.map(\.block.requests) == [[h.request(2), h.request(3)]])
        // Two blocks in flight now: another partial batch waits even when the delay runs out.
        h.step(0, .clientRequest(h.request(4)))
        #expect(h.fireBatch().prePrepares.isEmpty)
        h.run()
        #expect(h.actions[0].prePrepares.last?.block.requests == [h.request(4)])
    }

    /// Persist-before-send: every message a replica signs is recorded, in the step that sends
    /// it or an earlier one, before it is sent (a step's records are made durable before any of
    /// its actions).
    @Test func everySignedMessageIsPersistedBeforeItIsSent() {
        var h = Harness()
        for i in 0..<4 { h.step(i, .clientRequest(h.request(1))) }
        h.run()
        for i in 0..<4 {
            var persisted: [WALRecord] = []
            var committed = false
            for ready in h.readies[i] {
                persisted += ready.persist
                for case let .broadcast(message) in ready.actions {
                    switch message {
                    case .prePrepare, .prepare, .commit, .viewChange, .newView:
                        #expect(persisted.contains(.sent(message)), "replica \(i) sent \(message.kind) before persisting it")
                    default: break
                    }
                    // A commit is only sent after its prepared certificate is on disk (amnesia).
                    if case .commit = message, i > 0 {
                        committed = true
                        #expect(persisted.contains { if case .prepared = $0 { true } else { false } })
                    }
                }
            }
            #expect(committed || i == 0)
        }
    }

    /// prepared needs quorum−1 prepares from *distinct* backups: one backup twice is one vote.
    @Test func duplicateSendersDoNotMakeAQuorum() {
        var h = Harness()
        let pp = h.signedPrePrepare(view: 0, height: 1, requests: [h.request(1)], by: 0)
        h.step(1, .message(.prePrepare(pp)))  // replica 1 prepares: 1 of 2 needed
        let again = h.step(1, .message(.prepare(h.prepare(pp, from: 2))))
        #expect(again.commits.count == 1)
        var h2 = Harness()
        h2.step(1, .message(.prePrepare(pp)))
        let first = h2.step(1, .message(.prepare(h2.prepare(pp, from: 1))))  // its own again, as if from the network
        let duplicate = h2.step(1, .message(.prepare(h2.prepare(pp, from: 1))))
        #expect(first.commits.isEmpty && duplicate.commits.isEmpty)
    }

    @Test func aPrepareFromThePrimaryIsNeverCounted() {
        var h = Harness()
        let pp = h.signedPrePrepare(view: 0, height: 1, requests: [h.request(1)], by: 0)
        h.step(1, .message(.prePrepare(pp)))
        let out = h.step(1, .message(.prepare(h.prepare(pp, from: 0))))
        #expect(out.commits.isEmpty)
        #expect(h.replicas[1].rejections[.primaryPrepare] == 1)
    }

    @Test func aPrePrepareFromANonPrimaryIsRejected() {
        var h = Harness()
        let forged = h.signedPrePrepare(view: 0, height: 1, requests: [h.request(1)], by: 2)
        let out = h.step(1, .message(.prePrepare(forged)))
        #expect(out.prepares.isEmpty)
        #expect(h.replicas[1].rejections[.notFromPrimary] == 1)
    }

    @Test func aPrePrepareOutsideTheWatermarksIsRejected() {
        var h = Harness(window: 4)
        let far = h.signedPrePrepare(view: 0, height: 5, requests: [h.request(1)], by: 0)
        let out = h.step(1, .message(.prePrepare(far)))
        #expect(out.isEmpty)
        #expect(h.replicas[1].rejections[.outsideWatermarks] == 1)
    }

    @Test func aSecondPrePrepareForTheSameHeightIsRejected() {
        var h = Harness()
        let first = h.signedPrePrepare(view: 0, height: 1, requests: [h.request(1)], by: 0)
        let second = h.signedPrePrepare(view: 0, height: 1, requests: [h.request(2)], by: 0)
        #expect(h.step(1, .message(.prePrepare(first))).prepares.count == 1)
        #expect(h.step(1, .message(.prePrepare(second))).prepares.isEmpty)
        #expect(h.replicas[1].rejections[.conflictingPrePrepare] == 1)
    }

    @Test func blocksThatBreakTheHeaderRulesAreRejected() {
        let h = Harness()
        var forgedRequest = h.request(1)
        forgedRequest.operation = .put(key: [6], value: [6])  // signature no longer matches
        let cases: [(PrePrepare, RejectReason)] = [
            (h.signedPrePrepare(view: 0, height: 1, requests: [forgedRequest], by: 0), .invalidBatch),
            (h.signedPrePrepare(view: 0, height: 1, requests: [h.request(1)], by: 0, txRoot: .zero), .invalidBatch),
            (h.signedPrePrepare(view: 0, height: 1, requests: [h.request(1)], by: 0,
                                prev: ChainTip(height: 0, blockHash: Digest.sha256([1]), timestampMs: 0, history: .init())),
             .invalidBlock),
            (h.signedPrePrepare(view: 0, height: 1, requests: [h.request(1)], by: 0, timestampMs: h.nowMs + 3_600_000),
             .badTimestamp),
            (h.signedPrePrepare(view: 0, height: 1, requests: [h.request(1), h.request(1)], by: 0), .invalidBatch),
        ]
        // Each case at a backup that checks the forged request's signature (2f+1 of the
        // replicas do, SPEC.md §14.1; the primary is one, so two backups are).
        let checker = try! #require((1...3).first { h.config.verifiesInProposal(forgedRequest, replica: ReplicaID($0)) })
        for (pp, reason) in cases {
            var fresh = Harness()
            #expect(fresh.step(checker, .message(.prePrepare(pp))).prepares.isEmpty)
            #expect(fresh.replicas[checker].rejections == [reason: 1])
        }
    }

    /// The backup that skips a request's signature in a PRE-PREPARE prepares a forged one, but
    /// the other two backups check it: with their PREPAREs missing no quorum of 3 forms, so the
    /// block never prepares and never commits (SPEC.md §14.1).
    @Test func aForgedRequestNeverGathersAQuorumOfPrepares() {
        var h = Harness()
        var forgedRequest = h.request(1)
        forgedRequest.operation = .put(key: [6], value: [6])
        let pp = h.signedPrePrepare(view: 0, height: 1, requests: [forgedRequest], by: 0)
        let backups = (1...3).map { ReplicaID($0) }
        let checkers = backups.filter { h.config.verifiesInProposal(forgedRequest, replica: $0) }
        #expect(checkers.count == 2)
        var prepares: [Prepare] = []
        for backup in backups {
            let out = h.step(Int(backup), .message(.prePrepare(pp)))
            if checkers.contains(backup) {
                #expect(out.prepares.isEmpty && h.replicas[Int(backup)].rejections[.invalidBatch] == 1)
            } else {
                prepares += out.prepares
            }
        }
        #expect(prepares.count == 1, "only the backup that skipped the check prepares")
        var commits: [Commit] = []
        for prepare in prepares {
            for backup in backups { commits += h.step(Int(backup), .message(.prepare(prepare))).commits }
        }
        #expect(commits.isEmpty, "a replica committed a block holding a forged request")
        #expect(h.replicas.allSatisfy { $0.lastExecuted == 0 && $0.chain.height == 0 })
    }

    @Test func aBadSignatureIsCountedAndDropped() {
        var h = Harness()
        var pp = h.signedPrePrepare(view: 0, height: 1, requests: [h.request(1)], by: 0)
        pp.signature = Signature(Array(repeating: 0x11, count: 64))!
        #expect(h.step(1, .message(.prePrepare(pp))).isEmpty)
        #expect(h.replicas[1].rejections[.badSignature] == 1)
    }

    /// Several heights in flight; commits for height 2 arriving first still execute 1 then 2.
    @Test func executionIsStrictlyInHeightOrder() {
        var h = Harness()
        let pp1 = h.signedPrePrepare(view: 0, height: 1, requests: [h.request(1)], by: 0)
        let tip1 = ChainTip.genesis.appending(pp1.block.header, hash: pp1.blockHash)
        let pp2 = h.signedPrePrepare(view: 0, height: 2, requests: [h.request(2)], by: 0, prev: tip1)
        // Height 2 arrives first: kept until height 1 links it.
        #expect(h.step(1, .message(.prePrepare(pp2))).prepares.isEmpty)
        #expect(h.step(1, .message(.prePrepare(pp1))).prepares.count == 2)
        for pp in [pp2, pp1] {
            h.step(1, .message(.prepare(h.prepare(pp, from: 2))))
            h.step(1, .message(.prepare(h.prepare(pp, from: 3))))
        }
        for from in [0, 2] { h.step(1, .message(.commit(h.commit(pp2, from: from)))) }
        #expect(h.executed[1].isEmpty)
        for from in [0, 2] { h.step(1, .message(.commit(h.commit(pp1, from: from)))) }
        #expect(h.executed[1].map(\.height) == [1, 2])
    }

    /// A retried request gets the cached reply; an older request id is ignored.
    @Test func clientsAreDeduplicated() {
        var h = Harness()
        for i in 0..<4 { h.step(i, .clientRequest(h.request(5))) }
        h.run()
        #expect(h.replies[1].count == 1)
        let retry = h.step(1, .clientRequest(h.request(5)))
        #expect(retry.contains { if case .replyAgain(_, 5) = $0 { return true } else { return false } })
        #expect(h.replies[1].count == 2 && h.replies[1][1] == h.replies[1][0])
        let stale = h.step(1, .clientRequest(h.request(4)))
        #expect(stale.isEmpty)
        #expect(h.replicas[1].rejections[.staleRequest] == 1)
        // The primary never proposes the executed request again.
        #expect(h.step(0, .timerFired(.batch)).prePrepares.isEmpty)
    }

    @Test func requestsWithBadSignaturesAreRefused() {
        var h = Harness()
        var bad = h.request(1)
        bad.signature = Signature(Array(repeating: 1, count: 64))!
        // Nothing is pooled or proposed; the client is told why, and nothing else happens.
        let out = h.step(0, .clientRequest(bad))
        #expect(out.count == 1)
        guard case let .refuse(client, requestID, refusal) = out.first else {
            Issue.record("expected a refusal, got \(out)")
            return
        }
        #expect(client == h.client.publicKey && requestID == 1 && refusal == .badSignature)
        #expect(h.replicas[0].rejections[.invalidRequest] == 1)
        #expect(h.step(0, .timerFired(.batch)).prePrepares.isEmpty)
    }

    @Test func messagesRoundTripThroughTheCodec() throws {
        var h = Harness()
        for i in 0..<4 { h.step(i, .clientRequest(h.request(1))) }
        h.run()
        let messages = h.actions.flatMap(\.broadcasts)
        #expect(messages.count > 5)
        for message in messages {
            let bytes = message.encoded()
            #expect(try Message(decoding: bytes) == message)
            #expect(throws: CodecError.self) { _ = try Message(decoding: Array(bytes.dropLast())) }
        }
        for record in h.readies.flatMap({ $0.flatMap(\.persist) }) { #expect(try WALRecord(decoding: record.encoded()) == record) }
    }
}

@Suite struct RequestRelayTests {
    /// A client that reached only a backup is still served: the backup relays the request to
    /// the primary once it has waited a retransmit interval without being proposed, and once
    /// per view. A request every replica received is never relayed (clients send each request
    /// to every replica, so relaying on arrival would triple the primary's request traffic).
    @Test func aBackupRelaysOnlyRequestsThatWaitedUnproposed() {
        var h = Harness()
        let interval = h.config.parameters.viewChangeTimeoutMs / 8
        func relays(_ actions: [Action]) -> [Request] {
            actions.compactMap { if case let .send(.request(r), to) = $0, to == 0 { return r } else { return nil } }
        }
        for i in 0..<4 { h.step(i, .clientRequest(h.request(1))) }
        h.run()
        #expect(h.executed.allSatisfy { $0.count == 1 })
        h.nowMs += 2 * interval
        for i in 1..<4 { #expect(relays(h.step(i, .timerFired(.retransmit))).isEmpty, "backup \(i)") }

        // Only backup 1 hears of request 2.
        #expect(relays(h.step(1, .clientRequest(h.request(2)))).isEmpty)
        h.nowMs += interval / 2
        #expect(relays(h.step(1, .timerFired(.retransmit))).isEmpty, "relayed before it waited an interval")
        h.nowMs += interval
        #expect(relays(h.step(1, .timerFired(.retransmit))) == [h.request(2)])
        h.nowMs += interval
        #expect(relays(h.step(1, .timerFired(.retransmit))).isEmpty, "relayed twice in one view")
        h.run()
        #expect(h.executed.allSatisfy { $0.count == 2 }, "\(h.executed.map(\.count))")
    }

    /// A copy of a request that reaches the primary after its block committed but before its
    /// result came back (a backup's relay, a client's retry) is not proposed again: a block
    /// holding one request twice, or a request already ordered, would be refused by backups
    /// and stall the cluster until a view change.
    @Test func aCopyArrivingBetweenCommitAndExecutionIsNotProposedAgain() {
        var h = Harness()
        let first = h.request(1)
        func proposals(_ actions: [Action]) -> [PrePrepare] {
            actions.compactMap { if case let .broadcast(.prePrepare(pp)) = $0 { return pp } else { return nil } }
        }
        // Drive the primary's core by hand, so execution happens only when the test says.
        let pp = proposals(h.replicas[0].step(.clientRequest(first), nowMs: h.nowMs).actions).first!
        for from in [1, 2] { _ = h.replicas[0].step(.message(.prepare(h.prepare(pp, from: from))), nowMs: h.nowMs) }
        var delivered: [Action] = []
        for from in [1, 2] { delivered += h.replicas[0].step(.message(.commit(h.commit(pp, from: from))), nowMs: h.nowMs).actions }
        #expect(delivered.contains { if case .execute = $0 { return true } else { return false } })

        // The relayed copy arrives before the execution result, then a new request.
        let relayed = h.replicas[0].step(.message(.request(first)), nowMs: h.nowMs).actions
        let next = proposals(h.replicas[0].step(.clientRequest(h.request(2)), nowMs: h.nowMs).actions
                             + h.replicas[0].step(.timerFired(.batch), nowMs: h.nowMs).actions)
        #expect(proposals(relayed).isEmpty)
        #expect(next.count == 1 && next[0].block.requests == [h.request(2)], "\(next.map(\.block.requests))")

        // Once executed (the core learns it from the execution's replies), a late copy gets the
        // recorded reply, never a new proposal.
        let reply = Reply.replies(to: pp.block, outcomes: try! h.states[0].execute(pp.block))[0]
        #expect(reply.result == OperationResult.written(version: 1).encoded())
        _ = h.replicas[0].step(.executed(height: 1, stateRoot: .zero, replies: [reply]), nowMs: h.nowMs)
        let late = h.replicas[0].step(.clientRequest(first), nowMs: h.nowMs).actions
            + h.replicas[0].step(.timerFired(.batch), nowMs: h.nowMs).actions
        #expect(proposals(late).allSatisfy { !$0.block.requests.contains(first) })
        #expect(late.contains { if case .replyAgain(first.client, first.requestID) = $0 { return true } else { return false } })
    }

    /// A step is a function of the core's state and the event: what the state machine does
    /// outside the core reaches it only through events. Two copies of one core fed the same
    /// events act the same, though the state machine beside one of them executed a block the
    /// core was never told of (a core that read the state through a reference answered the
    /// retransmission from the executed table instead of ordering it).
    @Test func aStepDependsOnlyOnTheCoresStateAndTheEvent() {
        var h = Harness()
        let request = h.request(1)
        let copy = h.replicas[0]
        _ = try! h.states[0].execute(Block(header: BlockHeader(clusterID: h.cluster, height: 1, view: 0, timestampMs: 0, proposer: 0,
                                                              prevBlockHash: .zero, txRoot: .zero, historyRoot: .zero),
                                           requests: [request]))
        #expect(h.states[0].lastReply(of: request.client)?.requestID == 1)
        var other = copy
        let a = h.replicas[0].step(.clientRequest(request), nowMs: h.nowMs).actions
            + h.replicas[0].step(.timerFired(.batch), nowMs: h.nowMs).actions
        let b = other.step(.clientRequest(request), nowMs: h.nowMs).actions + other.step(.timerFired(.batch), nowMs: h.nowMs).actions
        #expect("\(a)" == "\(b)")
        #expect(a.contains { if case let .broadcast(.prePrepare(pp)) = $0 { pp.block.requests == [request] } else { false } })
    }
}
