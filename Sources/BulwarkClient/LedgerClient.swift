import BulwarkCore
import BulwarkTransport
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

public enum ClientError: Error, CustomStringConvertible {
    case timedOut(requestID: UInt64, replies: Int, needed: Int)
    case undecodableResult
    case noProof(String)
    /// f+1 replicas refused the request alike before ordering it.
    case refused(RequestRefusal)

    public var description: String {
        switch self {
        case let .timedOut(id, replies, needed):
            return "no result for request \(id): \(replies) matching replies, \(needed) needed; is the cluster running?"
        case .undecodableResult: return "the replicas' agreed result could not be decoded"
        case let .noProof(reason): return "no verified proof: \(reason)"
        case let .refused(refusal): return "refused by the cluster: \(refusal)"
        }
    }
}

/// The client library (ARCHITECTURE.md §5): signs requests with the client's key, sends each to
/// the primary it believes current and, unanswered, to every replica (`RequestRouting`), and
/// accepts a result once f+1 replicas sent the same reply (so at least one honest replica
/// vouches for it). Replies need no signature: each comes on the connection to its replica,
/// whose frames the transport authenticates with the handshake's session keys.
public final class LedgerClient: Sendable {
    /// The epoch this client knows and its configuration: cluster.json (epoch 0) at first,
    /// then whatever `follow` learnt.
    let known: NIOLockedValueBox<(epoch: UInt64, config: ClusterConfig)>
    public var config: ClusterConfig { known.withLockedValue { $0.config } }
    public var epoch: UInt64 { known.withLockedValue { $0.epoch } }
    let key: PrivateKey
    let group: MultiThreadedEventLoopGroup
    /// False when the caller lent the event loops and shuts them down itself.
    let ownsGroup: Bool
    let transport: NIOLockedValueBox<Transport?> = .init(nil)
    let pending = NIOLockedValueBox<[UInt64: Pending]>([:])
    let nextID: NIOLockedValueBox<UInt64>
    /// Where requests go first: the primary of the view f+1 replicas reported.
    let routing = NIOLockedValueBox(RequestRouting())

    let proofs = NIOLockedValueBox<[UInt64: PendingProof]>([:])
    /// Fast reads in flight, by nonce.
    let fastReads = NIOLockedValueBox<[UInt64: PendingFastRead]>([:])

    struct PendingFastRead {
        var quorum = FastReadQuorum()
        var continuation: CheckedContinuation<FastReadQuorum.Answer?, Never>?
    }
    /// Answers to one request for epoch proofs, by replica (empty: it proved nothing).
    let epochAnswers = NIOLockedValueBox<[UInt64: [ReplicaID: [EpochProof]]]>([:])

    /// Answers to one prove request: only proofs that verified are kept.
    struct PendingProof {
        var key: [UInt8]
        var verified: [ReplicaID: KeyProofBundle] = [:]
        var refused: [ReplicaID: String] = [:]
        var firstVerified: ContinuousClock.Instant?
    }

    struct Pending {
        var quorum = ReplyQuorum()
        var continuation: CheckedContinuation<ClientReply, any Error>?
    }

    /// The next request id or nonce: ids only grow.
    func takeID() -> UInt64 {
        nextID.withLockedValue { id -> UInt64 in
            id += 1
            return id
        }
    }

    /// `group` lets many clients in one process share event loops (the caller shuts it down).
    public init(config: ClusterConfig, key: PrivateKey, group: MultiThreadedEventLoopGroup? = nil,
                logger: Logger = Logger(label: "bulwark.client")) {
        known = .init((0, config))
        self.key = key
        self.ownsGroup = group == nil
        self.group = group ?? MultiThreadedEventLoopGroup(numberOfThreads: 1)
        // Request ids must grow across runs of the same key: start from the wall clock in µs.
        nextID = .init(UInt64(Date().timeIntervalSince1970 * 1_000_000))
        var settings = Transport.Settings(frameBytesMax: config.parameters.frameBytesMax)
        settings.frameBytesMaxFollowsConfig = true
        let transport = Transport(group: self.group, config: config, role: .client(key.publicKey), key: key,
                                  settings: settings, logger: logger,
                                  onFrame: { [weak self] role, bytes in self?.received(role, bytes) })
        self.transport.withLockedValue { $0 = transport }
    }

    func received(_ role: PeerRole, _ bytes: [UInt8]) {
        guard case let .replica(replica) = role, let frame = try? ClientFrame(decoding: bytes) else { return }
        switch frame {
        case let .reply(reply): received(reply, from: replica)
        case let .proof(nonce, bundle): receivedProof(nonce: nonce, .proof(bundle), from: replica)
        case let .proofUnavailable(nonce, reason):
            receivedEpochProofs(nonce: nonce, [], from: replica)
            receivedProof(nonce: nonce, .refused(reason), from: replica)
        case let .refused(requestID, refusal): received(refusal, of: requestID, from: replica)
        case let .epochProofs(nonce, steps): receivedEpochProofs(nonce: nonce, steps, from: replica)
        case let .fastReadAnswer(nonce, height, result):
            receivedFastRead(nonce: nonce, .init(height: height, result: result), from: replica)
        case .request, .proveRequest, .fetchBlocks, .blocks, .epochProofsRequest, .fastRead: return
        }
    }

    /// Kept as received (checked by `learnEpochs`, off the event loop), first answer only.
    func receivedEpochProofs(nonce: UInt64, _ steps: [EpochProof], from replica: ReplicaID) {
        epochAnswers.withLockedValue { answers in
            guard answers[nonce] != nil, answers[nonce]![replica] == nil else { return }
            answers[nonce]![replica] = steps
        }
    }

    enum ProofAnswer {
        case proof(KeyProofBundle)
        case refused(String)
    }

    /// A proof is checked here, against the configuration alone: the replica is not trusted.
    func receivedProof(nonce: UInt64, _ answer: ProofAnswer, from replica: ReplicaID) {
        let key = proofs.withLockedValue { $0[nonce]?.key }
        guard let key else { return }
        var verdict = answer
        if case let .proof(bundle) = answer {
            do {
                let proof = try bundle.verify(config: config)
                if proof.key != key { verdict = .refused("replica \(replica) proved another key") }
            } catch {
                verdict = .refused("replica \(replica) sent a proof that does not verify: \(error)")
            }
        }
        proofs.withLockedValue { proofs in
            guard proofs[nonce] != nil else { return }
            switch verdict {
            case let .proof(bundle):
                proofs[nonce]!.verified[replica] = bundle
                if proofs[nonce]!.firstVerified == nil { proofs[nonce]!.firstVerified = .now }
            case let .refused(reason): proofs[nonce]!.refused[replica] = reason
            }
        }
    }

    /// A refusal: final ones from f+1 validators end the request (fewer could be lying); a
    /// momentary one (rate-limited) only waits for the next round (`ReplyQuorum`).
    func received(_ refusal: RequestRefusal, of requestID: UInt64, from replica: ReplicaID) {
        settle(requestID) { quorum, config in quorum.received(refusal, from: replica, config: config) }
    }

    /// A replica's latest reply replaces its earlier one; f+1 validators of the known epoch
    /// agreeing on the result and height settle the request (`ReplyQuorum`).
    func received(_ reply: ClientReply, from replica: ReplicaID) {
        let config = self.config
        routing.withLockedValue { $0.heard(view: reply.view, from: replica, config: config) }
        settle(reply.requestID) { quorum, config in quorum.received(reply, from: replica, config: config) }
    }

    func settle(_ requestID: UInt64, _ step: (inout ReplyQuorum, ClusterConfig) -> ReplyQuorum.Verdict?) {
        let config = self.config
        let (verdict, continuation) = pending.withLockedValue { pending -> (ReplyQuorum.Verdict?, CheckedContinuation<ClientReply, any Error>?) in
            guard var entry = pending[requestID] else { return (nil, nil) }
            // Every answer is kept, verdict or not: the quorum forms from answers over time.
            defer { pending[requestID] = entry }
            guard let verdict = step(&entry.quorum, config) else { return (nil, nil) }
            let continuation = entry.continuation
            entry.continuation = nil
            return (verdict, continuation)
        }
        switch verdict {
        case let .accepted(reply)?: continuation?.resume(returning: reply)
        case let .refused(refusal)?: continuation?.resume(throwing: ClientError.refused(refusal))
        case nil: break
        }
    }

    /// Orders `operation` through the cluster and returns its result and the height of the
    /// block it executed in.
    public func execute(_ operation: LedgerOperation, timeout: Duration = .seconds(15),
                        retryEvery: Duration = .seconds(1)) async throws -> (OperationResult, Height) {
        let deadline = ContinuousClock.now + timeout
        while true {
            let (result, height) = try await executeOnce(operation, timeout: deadline - ContinuousClock.now,
                                                         retryEvery: retryEvery)
            // A retransmitted read that had executed already: its result is not kept, so it is
            // asked again under a new request id (reads change nothing, so this is safe).
            guard result == .notKept, ContinuousClock.now < deadline else { return (result, height) }
        }
    }

    func executeOnce(_ operation: LedgerOperation, timeout: Duration, retryEvery: Duration) async throws
        -> (OperationResult, Height)
    {
        let requestID = takeID()
        let request = Request.signed(by: key, cluster: config.clusterID, requestID: requestID, operation: operation)
        // Every replica would refuse it: say so now rather than after a round trip.
        let bytes = request.encoded().count
        guard bytes <= config.parameters.requestBytesMax else {
            throw ClientError.refused(.tooLarge(bytes: UInt64(bytes), limit: UInt64(config.parameters.requestBytesMax)))
        }
        let frame = ClientFrame.request(request).encoded()
        let transport = self.transport.withLockedValue { $0! }
        pending.withLockedValue { $0[requestID] = Pending() }
        defer { _ = pending.withLockedValue { $0.removeValue(forKey: requestID) } }
        let reply: ClientReply = try await withThrowingTaskGroup(of: ClientReply?.self) { tasks in
            tasks.addTask { [self] in
                try await withCheckedThrowingContinuation { continuation in
                    let early = pending.withLockedValue { pending -> Bool in
                        pending[requestID]?.continuation = continuation
                        return pending[requestID] == nil
                    }
                    if early { continuation.resume(throwing: CancellationError()) }
                }
            }
            tasks.addTask { [self] in
                // Send to the primary, then, unanswered, to every validator until answered
                // or out of time (`RequestRouting`). A request unanswered for two rounds may
                // be waiting on validators this client does not know yet: it checks for a
                // newer epoch, by proofs, and from then on sends to that epoch's validators
                // (the same signed request, so it executes at most once).
                let deadline = ContinuousClock.now + timeout
                var round = 0
                while ContinuousClock.now < deadline {
                    let config = self.config
                    for replica in routing.withLockedValue({ $0.targets(round: round, config: config) }) {
                        transport.send(frame, to: replica)
                    }
                    let broadcastAfter = Duration.milliseconds(Int64(RequestRouting.broadcastAfterMs(config)))
                    try await Task.sleep(for: round == 0 ? min(broadcastAfter, retryEvery) : retryEvery)
                    round += 1
                    if round % 2 == 0 { try? await learnEpochs(until: min(deadline, .now + retryEvery)) }
                }
                return nil
            }
            for try await result in tasks {
                if let result {
                    tasks.cancelAll()
                    return result
                }
                let config = self.config
                let (have, refusal) = pending.withLockedValue { state in
                    (state[requestID]?.quorum.replyCount ?? 0, state[requestID]?.quorum.refusalAtDeadline(config: config))
                }
                let continuation = pending.withLockedValue { state -> CheckedContinuation<ClientReply, any Error>? in
                    let c = state[requestID]?.continuation
                    state[requestID]?.continuation = nil
                    return c
                }
                continuation?.resume(throwing: refusal.map { ClientError.refused($0) }
                    ?? ClientError.timedOut(requestID: requestID, replies: have, needed: config.replyQuorum))
            }
            throw ClientError.timedOut(requestID: requestID, replies: 0, needed: config.replyQuorum)
        }
        guard let result = try? OperationResult(decoding: reply.result) else { throw ClientError.undecodableResult }
        return (result, reply.height)
    }

    /// A linearizable read of `key` (SPEC.md §8.6): first without ordering, accepted when 2f+1
    /// validators of the known epoch give the same result at the same executed height; when
    /// they do not (writes in flight, a replica behind or lying) or not within `fastWait`, the
    /// read is ordered like any request, under a new request id.
    /// `fastPath` says which way the answer came.
    public func read(_ key: [UInt8], timeout: Duration = .seconds(15)) async throws
        -> (result: OperationResult, height: Height, fastPath: Bool)
    {
        let fastWait = Duration.milliseconds(Int64(RequestRouting.broadcastAfterMs(config)))
        if let answer = await fastRead(key, wait: fastWait), let result = try? OperationResult(decoding: answer.result) {
            return (result, answer.height, true)
        }
        let (result, height) = try await execute(.get(key: key), timeout: timeout)
        return (result, height, false)
    }

    /// The fast path alone: the result 2f+1 validators agreed on, or nil.
    public func fastRead(_ key: [UInt8], wait: Duration) async -> FastReadQuorum.Answer? {
        let nonce = takeID()
        let frame = ClientFrame.fastRead(key: key, nonce: nonce).encoded()
        let transport = self.transport.withLockedValue { $0! }
        fastReads.withLockedValue { $0[nonce] = PendingFastRead() }
        defer { _ = fastReads.withLockedValue { $0.removeValue(forKey: nonce) } }
        return await withTaskGroup(of: FastReadQuorum.Answer?.self) { tasks in
            tasks.addTask { [self] in
                await withCheckedContinuation { continuation in
                    let gone = fastReads.withLockedValue { pending -> Bool in
                        pending[nonce]?.continuation = continuation
                        return pending[nonce] == nil
                    }
                    if gone { return continuation.resume(returning: nil) }
                    // Sent once an answer has somewhere to go.
                    for replica in config.validators.map(\.id) { transport.send(frame, to: replica) }
                }
            }
            tasks.addTask { [self] in
                try? await Task.sleep(for: wait)
                let continuation = fastReads.withLockedValue { pending in
                    defer { pending[nonce]?.continuation = nil }
                    return pending[nonce]?.continuation
                }
                continuation?.resume(returning: nil)
                return nil
            }
            let first = await tasks.next() ?? nil
            tasks.cancelAll()
            return first
        }
    }

    /// An answer to a fast read: the read ends once 2f+1 agree, or once they no longer can.
    func receivedFastRead(nonce: UInt64, _ answer: FastReadQuorum.Answer, from replica: ReplicaID) {
        let config = self.config
        let (verdict, continuation) = fastReads.withLockedValue { pending
            -> (FastReadQuorum.Answer??, CheckedContinuation<FastReadQuorum.Answer?, Never>?) in
            guard var entry = pending[nonce] else { return (nil, nil) }
            defer { pending[nonce] = entry }
            if let agreed = entry.quorum.received(answer, from: replica, config: config) {
                defer { entry.continuation = nil }
                return (.some(agreed), entry.continuation)
            }
            guard entry.quorum.mustOrder(config: config) else { return (nil, nil) }
            defer { entry.continuation = nil }
            return (.some(nil), entry.continuation)
        }
        if let verdict { continuation?.resume(returning: verdict) }
    }

    /// A verified read of `key` at the newest certified checkpoint any replica offers: asks
    /// every replica, checks each answer against the configuration, and returns the highest
    /// verified one once all replicas answered or `settle` after the first verified answer.
    public func prove(_ key: [UInt8], timeout: Duration = .seconds(10), settle: Duration = .milliseconds(300),
                      retryEvery: Duration = .seconds(1)) async throws -> KeyProofBundle {
        let nonce = takeID()
        let frame = ClientFrame.proveRequest(key: key, nonce: nonce).encoded()
        let transport = self.transport.withLockedValue { $0! }
        let replicas = config.validators.map(\.id)
        proofs.withLockedValue { $0[nonce] = PendingProof(key: key) }
        defer { _ = proofs.withLockedValue { $0.removeValue(forKey: nonce) } }
        let deadline = ContinuousClock.now + timeout
        var nextSend = ContinuousClock.now
        while true {
            let now = ContinuousClock.now
            let pending = proofs.withLockedValue { $0[nonce]! }
            let answered = pending.verified.count + pending.refused.count
            if let first = pending.firstVerified, answered == replicas.count || now >= first + settle || now >= deadline {
                return pending.verified.values.max { $0.proof.height < $1.proof.height }!
            }
            if answered == replicas.count || now >= deadline {
                let reasons = pending.refused.sorted { $0.key < $1.key }.map(\.value)
                throw ClientError.noProof(reasons.isEmpty ? "no replica answered; is the cluster running?"
                                                           : reasons.joined(separator: "; "))
            }
            if now >= nextSend {
                for replica in replicas where pending.verified[replica] == nil && pending.refused[replica] == nil {
                    transport.send(frame, to: replica)
                }
                nextSend = now + retryEvery
            }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    /// Learns the configuration in force and follows it (SPEC.md §18.5). From the epoch it
    /// knows (cluster.json's at first), the client asks the replicas how the configuration
    /// changed since, and checks every step itself: the execution certificate of the epoch's
    /// last block, signed by a quorum of that epoch's validators, and the governance the
    /// certified state holds. So it trusts no replica, only the epoch before. It then reaches
    /// the newest proven epoch's validators at their addresses, with their keys, and orders a
    /// `governance` read there, whose answer (with open proposals) it returns once it names
    /// the configuration it proved; a newer epoch in it means a change landed meanwhile, and
    /// the client follows that too. A client whose known epoch has no replica left to answer
    /// must be given a newer configuration file.
    @discardableResult
    public func follow(timeout: Duration = .seconds(15)) async throws -> Governance {
        let deadline = ContinuousClock.now + timeout
        for _ in 0..<32 {
            try await learnEpochs(until: deadline)
            let (result, _) = try await execute(.governance, timeout: deadline - ContinuousClock.now)
            guard case let .governance(governance) = result else { throw ClientError.undecodableResult }
            let (epoch, config) = known.withLockedValue { ($0.epoch, $0.config) }
            if governance.epoch == epoch {
                guard governance.config == config else {
                    throw ClientError.noProof("the replicas' configuration of epoch \(epoch) is not the one its predecessor certified")
                }
                return governance
            }
            guard governance.epoch > epoch, ContinuousClock.now < deadline else {
                throw ClientError.noProof("the replicas report epoch \(governance.epoch), but this client proved epoch \(epoch)")
            }
            // The new epoch's first checkpoint certificate may still be on its way.
            try await Task.sleep(for: .milliseconds(200))
        }
        throw ClientError.noProof("the configuration kept changing while it was being read")
    }

    /// The configuration in force as far as any replica proves it from the one this client
    /// knows (SPEC.md §18.5), without an ordered read, so it needs no binding in a closed
    /// cluster: the known epoch and configuration when no replica answers in time.
    public func learnConfiguration(timeout: Duration = .seconds(5)) async -> (epoch: UInt64, config: ClusterConfig) {
        try? await learnEpochs(until: .now + timeout)
        return known.withLockedValue { $0 }
    }

    /// Advances the known configuration as far as any replica proves, epoch by epoch.
    func learnEpochs(until deadline: ContinuousClock.Instant, settle: Duration = .milliseconds(300),
                     retryEvery: Duration = .seconds(1)) async throws {
        for _ in 0..<1024 {
            let (epoch, config) = known.withLockedValue { ($0.epoch, $0.config) }
            let nonce = takeID()
            let frame = ClientFrame.epochProofsRequest(from: epoch, nonce: nonce).encoded()
            let transport = self.transport.withLockedValue { $0! }
            let replicas = config.validators.map(\.id)
            epochAnswers.withLockedValue { $0[nonce] = [:] }
            defer { _ = epochAnswers.withLockedValue { $0.removeValue(forKey: nonce) } }
            var nextSend = ContinuousClock.now, firstAnswer: ContinuousClock.Instant?
            var answers: [ReplicaID: [EpochProof]] = [:]
            while true {
                let now = ContinuousClock.now
                answers = epochAnswers.withLockedValue { $0[nonce] ?? [:] }
                if firstAnswer == nil, !answers.isEmpty { firstAnswer = now }
                if answers.count == replicas.count || firstAnswer.map({ now >= $0 + settle }) == true { break }
                guard now < deadline else {
                    throw ClientError.noProof("no replica of epoch \(epoch) answered; is the cluster running?")
                }
                if now >= nextSend {
                    for replica in replicas where answers[replica] == nil { transport.send(frame, to: replica) }
                    nextSend = now + retryEvery
                }
                try await Task.sleep(for: .milliseconds(10))
            }
            let proven = EpochProof.newestProven(from: (epoch, config),
                                                 answers: answers.sorted(by: { $0.key < $1.key }).map(\.value))
            guard let newest = proven else { return }
            // Learners may run side by side (stalled requests each look): the epoch only moves up.
            let advanced = known.withLockedValue { known -> Bool in
                guard newest.epoch > known.epoch else { return false }
                known = newest
                return true
            }
            if advanced { transport.update(config: newest.config) }
        }
    }

    public func shutdown() async {
        await transport.withLockedValue { $0 }?.shutdown()
        if ownsGroup { try? await group.shutdownGracefully() }
    }
}
