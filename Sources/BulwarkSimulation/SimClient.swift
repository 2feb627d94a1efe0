import BulwarkAdversary
import BulwarkConsensus
import BulwarkCore

/// One completed client operation, as the client saw it.
struct CompletedOperation {
    var request: Request
    /// The encoded `OperationResult` that f+1 replicas agreed on.
    var result: [UInt8]
    var invokedMs: UInt64
    var completedMs: UInt64
    /// A `get` answered without ordering (SPEC.md §8.6) at this height: not in the ledger as
    /// a request, checked against the ledger's state at that height instead.
    var fastReadHeight: Height? = nil
}

/// A closed-loop client: one outstanding signed request at a time, sent to the primary it
/// believes current and, unanswered, to every validator of the epoch it knows
/// (`RequestRouting`, as `LedgerClient` sends), settled by the production acceptance rule (`ReplyQuorum`: f+1 of those
/// validators with the same result at the same height, or the same final refusal), re-sent on
/// a timeout. Like `LedgerClient`, a request unanswered for two rounds makes it ask for epoch
/// proofs, and it follows whatever epoch they prove (`EpochProof.newestProven`).
final class SimClient {
    let index: Int
    let key: PrivateKey
    var issued: UInt64 = 0
    var current: (request: Request, invokedMs: UInt64)?
    var quorum = ReplyQuorum()
    var routing = RequestRouting()
    /// The fast read in flight, if the current operation is one (SPEC.md §8.6).
    var fastRead: (nonce: UInt64, key: [UInt8], invokedMs: UInt64, quorum: FastReadQuorum)?
    /// Rounds the current request went unanswered.
    var rounds = 0
    /// The epoch this client has proven and its configuration.
    var known: (epoch: UInt64, config: ClusterConfig)
    /// Answers to its newest question for epoch proofs, by replica.
    var epochQuestion: (nonce: UInt64, answers: [ReplicaID: [EpochProof]])?
    var nonces: UInt64 = 0
    /// The newest request id used: one per operation, and one more for each read asked again.
    var lastRequestID: UInt64 = 0
    var completed: [CompletedOperation] = []
    /// Last version seen per key, for compare-and-set.
    var versions: [[UInt8]: UInt64] = [:]
    var requestsMax = 0
    /// Operations issued before any generated ones (an admin's approvals); a client with a
    /// script issues exactly those.
    var script: [LedgerOperation] = []
    static let retryMs: UInt64 = 1000
    static let keys: [[UInt8]] = (0..<6).map { Array("k\($0)".utf8) }
    static func account(_ i: UInt64) -> [UInt8] { Array("acct/\(i)/b".utf8) }
    static let balanceMax: Int64 = 1 << 40

    init(index: Int, key: PrivateKey, config: ClusterConfig) {
        self.index = index
        self.key = key
        known = (0, config)
    }

    var isDone: Bool { current == nil && fastRead == nil && issued >= UInt64(requestsMax) && requestsMax > 0 }

    func issueNext(simulation: Simulation) {
        requestsMax = script.isEmpty ? simulation.options.requestsPerClient : script.count
        guard current == nil, fastRead == nil else { return }
        guard issued < UInt64(requestsMax) else { return simulation.clientFinished() }
        issued += 1
        let valueBytes = simulation.options.maxSize ? simulation.config.parameters.valueBytesMax : nil
        let operation = script.isEmpty ? nextOperation(&simulation.rng, valueBytes: valueBytes) : script[Int(issued) - 1]
        // Every other read goes the fast path first, as `LedgerClient.read` does (chosen by
        // count, not drawn, so a seed's fault mix stays what it was without fast reads).
        if case let .get(key) = operation, script.isEmpty, (issued + UInt64(index)) % 2 == 0 {
            return startFastRead(key, simulation)
        }
        send(operation, invokedMs: simulation.now, simulation)
    }

    /// Asks every validator it knows for `readKey` without ordering; 2f+1 agreeing answers
    /// settle it (`FastReadQuorum`), and without them in time (`RequestRouting.broadcastAfterMs`)
    /// the read is ordered under a new request id.
    private func startFastRead(_ readKey: [UInt8], _ simulation: Simulation) {
        nonces += 1
        fastRead = (nonces, readKey, simulation.now, FastReadQuorum())
        let frame = ClientFrame.fastRead(key: readKey, nonce: nonces).encoded()
        for validator in known.config.validators {
            simulation.sendClientFrame(frame, to: Int(validator.id), from: key.publicKey)
        }
        simulation.schedule(at: simulation.now + RequestRouting.broadcastAfterMs(known.config),
                            .clientFastReadExpired(index, nonce: nonces))
    }

    func receiveFastRead(nonce: UInt64, _ answer: FastReadQuorum.Answer, from replica: Int, simulation: Simulation) {
        guard var read = fastRead, read.nonce == nonce else { return }
        let agreed = read.quorum.received(answer, from: ReplicaID(replica), config: known.config)
        fastRead = read
        if let agreed {
            fastRead = nil
            simulation.report.fastReads += 1
            // The record of the read: a request never sent, only its operation and client count.
            let request = Request.signed(by: key, cluster: simulation.config.clusterID, requestID: 0,
                                         operation: .get(key: read.key))
            finish(CompletedOperation(request: request, result: agreed.result, invokedMs: read.invokedMs,
                                      completedMs: simulation.now, fastReadHeight: agreed.height), simulation)
        } else if read.quorum.mustOrder(config: known.config) {
            orderFastRead(simulation)
        }
    }

    func fastReadExpired(nonce: UInt64, simulation: Simulation) {
        guard fastRead?.nonce == nonce else { return }
        orderFastRead(simulation)
    }

    /// The fast path failed: the read is ordered like any request, its invocation time kept.
    private func orderFastRead(_ simulation: Simulation) {
        guard let read = fastRead else { return }
        fastRead = nil
        simulation.report.fastReadsOrdered += 1
        send(.get(key: read.key), invokedMs: read.invokedMs, simulation)
    }

    /// Signs `operation` under the next request id, makes it the current request and sends it
    /// to the primary it believes current, with the sending to everyone scheduled.
    private func send(_ operation: LedgerOperation, invokedMs: UInt64, _ simulation: Simulation) {
        lastRequestID += 1
        let request = Request.signed(by: key, cluster: simulation.config.clusterID, requestID: lastRequestID,
                                     operation: operation)
        current = (request, invokedMs)
        quorum = ReplyQuorum()
        rounds = 0
        sendRound(request, simulation)
        let wait = min(RequestRouting.broadcastAfterMs(known.config), Self.retryMs)
        simulation.schedule(at: simulation.now + wait, .clientRetry(index, requestID: lastRequestID))
    }

    func retry(requestID: UInt64, simulation: Simulation) {
        guard let current, current.request.requestID == requestID else { return }
        rounds += 1
        if rounds % 2 == 0 { askForEpochs(simulation) }
        sendRound(current.request, simulation)
        simulation.schedule(at: simulation.now + Self.retryMs, .clientRetry(index, requestID: requestID))
    }

    private func sendRound(_ request: Request, _ simulation: Simulation) {
        for replica in routing.targets(round: rounds, config: known.config) {
            simulation.sendRequest(request, to: Int(replica), from: key.publicKey)
        }
    }

    /// Asks the validators it knows for the epochs proven since its own.
    func askForEpochs(_ simulation: Simulation) {
        nonces += 1
        epochQuestion = (nonces, [:])
        let frame = ClientFrame.epochProofsRequest(from: known.epoch, nonce: nonces).encoded()
        for validator in known.config.validators {
            simulation.sendClientFrame(frame, to: Int(validator.id), from: key.publicKey)
        }
    }

    /// An answer to its question for epoch proofs: the known epoch moves up to the newest the
    /// answers so far prove.
    func receiveEpochProofs(nonce: UInt64, _ steps: [EpochProof], from replica: Int, simulation: Simulation) {
        guard var question = epochQuestion, question.nonce == nonce else { return }
        question.answers[ReplicaID(replica)] = steps
        epochQuestion = question
        let answers = question.answers.sorted { $0.key < $1.key }.map(\.value)
        guard let newest = EpochProof.newestProven(from: known, answers: answers, verifier: simulation.verifier),
              newest.epoch > known.epoch else { return }
        simulation.trace?("\(simulation.now)ms client \(index) follows epoch \(newest.epoch)")
        known = newest
    }

    /// A final refusal f+1 validators gave (a closed cluster's policy not binding its key yet):
    /// the application sends the same request again later, which the retry timer does.
    func receive(_ refusal: RequestRefusal, requestID: UInt64, from replica: Int, simulation: Simulation) {
        guard let current, requestID == current.request.requestID,
              case .refused? = quorum.received(refusal, from: ReplicaID(replica), config: known.config) else { return }
        simulation.report.refusalVerdicts += 1
        quorum = ReplyQuorum()
    }

    func receive(_ reply: ClientReply, from replica: Int, simulation: Simulation) {
        routing.heard(view: reply.view, from: ReplicaID(replica), config: known.config)
        guard let current, reply.requestID == current.request.requestID,
              case .accepted? = quorum.received(reply, from: ReplicaID(replica), config: known.config) else { return }
        if (try? OperationResult(decoding: reply.result)) == .notKept {
            // A retransmitted read that had executed: its result is not kept, so ask again
            // under a new request id; the operation's invocation time stays the first one.
            send(current.request.operation, invokedMs: current.invokedMs, simulation)
            return
        }
        // An admin's approval for an epoch not in force yet: approve again a little later.
        if !script.isEmpty, case let .configRefused(.wrongEpoch(inForce))? = try? OperationResult(decoding: reply.result),
           case let .approveConfig(approval) = current.request.operation, inForce < approval.epoch {
            self.current = nil
            issued -= 1
            simulation.schedule(at: simulation.now + simulation.rng.between(200, 600), .clientIssue(index))
            return
        }
        self.current = nil
        finish(CompletedOperation(request: current.request, result: reply.result, invokedMs: current.invokedMs,
                                  completedMs: simulation.now), simulation)
    }

    /// An operation the client accepted: recorded for the checkers, and the next one planned.
    private func finish(_ done: CompletedOperation, _ simulation: Simulation) {
        completed.append(done)
        if let result = try? OperationResult(decoding: done.result), let key = done.request.operation.singleKey {
            switch result {
            case let .written(version), let .value(_, version), let .balance(_, version): versions[key] = version
            case .deleted: versions[key] = 0
            default: break
            }
        }
        simulation.report.requestsCompleted += 1
        simulation.report.requestLatencyTotalMs += simulation.now - done.invokedMs
        let spread = 2 * simulation.options.faultWindowMs / UInt64(max(1, simulation.options.requestsPerClient))
        simulation.schedule(at: simulation.now + simulation.rng.between(10, max(20, spread)), .clientIssue(index))
    }

    /// The next random operation; with `valueBytes`, every value written is that long.
    func nextOperation(_ rng: inout SimulationRandom, valueBytes: Int? = nil) -> LedgerOperation {
        let key = Self.keys[Int(rng.between(0, UInt64(Self.keys.count - 1)))]
        var value = Array("v\(rng.next() % 1000)".utf8)
        if let valueBytes { value += Array(repeating: value.last ?? 0, count: max(0, valueBytes - value.count)) }
        switch rng.between(0, 99) {
        case 0..<30: return .put(key: key, value: value)
        case 30..<45: return .cas(key: key, expectedVersion: versions[key] ?? 0, value: value)
        case 45..<65: return .get(key: key)
        case 65..<70: return .get(key: Self.account(rng.between(0, 2)))
        case 70..<76:
            return .add(key: Self.account(rng.between(0, 2)), delta: Int64(rng.between(1, 20)), min: 0, max: Self.balanceMax)
        case 76..<85:
            // A transfer: all or nothing, never below zero, never changing the total.
            let from = rng.between(0, 2)
            let to = (from + rng.between(1, 2)) % 3
            let amount = Int64(rng.between(1, 15))
            return .txn(guards: [], writes: [
                .add(key: Self.account(from), delta: -amount, min: 0, max: Self.balanceMax),
                .add(key: Self.account(to), delta: amount, min: 0, max: Self.balanceMax),
            ])
        case 85..<92: return .delete(key: key)
        default: return .range(start: [], end: [], limit: 10)
        }
    }
}

extension LedgerOperation {
    /// The key of a single-key operation.
    var singleKey: [UInt8]? {
        switch self {
        case let .put(key, _), let .delete(key), let .cas(key, _, _), let .add(key, _, _, _), let .get(key),
             let .history(key, _): return key
        case .txn, .range, .approveConfig, .governance, .approvePolicy, .policy: return nil
        }
    }
}

/// A client that attacks the cluster instead of using it: `ClientAttack`'s rounds, sent
/// while faults are active, every 100–400 ms of virtual time.
final class MaliciousClient {
    let index: Int
    var attack: ClientAttack

    init(index: Int, key: PrivateKey, config: ClusterConfig) {
        self.index = index
        attack = ClientAttack(key: key, config: config)
    }

    func attack(simulation: Simulation) {
        guard simulation.faultsActive else { return }
        for send in attack.next().sends { simulation.sendRequest(send.request, to: send.replica, from: attack.client) }
        simulation.schedule(at: simulation.now + simulation.rng.between(100, 400), .maliciousClient(index))
    }
}
