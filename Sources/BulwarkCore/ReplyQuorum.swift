/// The client's acceptance rule for one request (SPEC.md §8.5, §15), as a pure value: a
/// result is accepted once f+1 validators of the epoch the client knows sent the same result at
/// the same height (each replica's latest answer counts once); a refusal ends the request only
/// when it is one every honest replica must give (`RequestRefusal.isFinal`) and f+1 validators
/// gave it. A refusal that reflects one replica's momentary state (a full pool) is a reason to
/// send again, never a verdict: an acknowledged write must stay readable while other replicas
/// serve.
public struct ReplyQuorum: Sendable {
    public enum Verdict: Hashable, Sendable {
        case accepted(ClientReply)
        case refused(RequestRefusal)
    }

    /// Each replica's latest answer: a reply or a refusal, whichever came last.
    var replies: [ReplicaID: ClientReply] = [:]
    var refusals: [ReplicaID: RequestRefusal] = [:]

    public init() {}

    public var replyCount: Int { replies.count }

    public mutating func received(_ reply: ClientReply, from replica: ReplicaID, config: ClusterConfig) -> Verdict? {
        replies[replica] = reply
        refusals[replica] = nil
        let agreeing = replies.count { replica, other in
            other.result == reply.result && other.height == reply.height && config.validator(replica) != nil
        }
        return agreeing >= config.replyQuorum ? .accepted(reply) : nil
    }

    public mutating func received(_ refusal: RequestRefusal, from replica: ReplicaID, config: ClusterConfig) -> Verdict? {
        // A replica that already answered with a result has said more than a refusal can.
        guard replies[replica] == nil else { return nil }
        refusals[replica] = refusal
        guard refusal.isFinal else { return nil }
        return agreeing(refusal, config: config) >= config.replyQuorum ? .refused(refusal) : nil
    }

    /// Out of time: the refusal f+1 validators gave last, if any (a request every replica
    /// kept refusing as rate-limited says so rather than only that it timed out).
    public func refusalAtDeadline(config: ClusterConfig) -> RequestRefusal? {
        Set(refusals.values).sorted { "\($0)" < "\($1)" }.first { agreeing($0, config: config) >= config.replyQuorum }
    }

    func agreeing(_ refusal: RequestRefusal, config: ClusterConfig) -> Int {
        refusals.count { replica, other in other == refusal && config.validator(replica) != nil }
    }
}

extension RequestRefusal {
    /// Whether every honest replica must refuse the request alike, whatever its own state: the
    /// request itself is at fault (its encoding, size or signature) or the policy every replica
    /// executes does not know its key. `rateLimited` is one replica's momentary state.
    public var isFinal: Bool {
        switch self {
        case .tooLarge, .malformed, .badSignature, .unknownClient: return true
        case .rateLimited: return false
        }
    }
}

/// The client's acceptance rule for a fast read (SPEC.md §8.6), as a pure value: a result is
/// accepted once 2f+1 validators of the client's epoch gave the same result at the same
/// executed height (each replica's latest answer counting once). Once that can no longer
/// happen, the client orders the read instead (`mustOrder`).
public struct FastReadQuorum: Sendable {
    public struct Answer: Hashable, Sendable {
        public var height: Height
        public var result: [UInt8]
        public init(height: Height, result: [UInt8]) {
            self.height = height
            self.result = result
        }
    }

    var answers: [ReplicaID: Answer] = [:]

    public init() {}

    public mutating func received(_ answer: Answer, from replica: ReplicaID, config: ClusterConfig) -> Answer? {
        guard config.validator(replica) != nil else { return nil }
        answers[replica] = answer
        return agreeing(answer, config: config) >= config.quorum ? answer : nil
    }

    func agreeing(_ answer: Answer, config: ClusterConfig) -> Int {
        answers.count { replica, other in other == answer && config.validator(replica) != nil }
    }

    /// No 2f+1 can agree any more: even if every validator yet to answer matched the largest
    /// agreeing group, it would stay short.
    public func mustOrder(config: ClusterConfig) -> Bool {
        let counted = answers.filter { config.validator($0.key) != nil }
        let largest = counted.values.map { agreeing($0, config: config) }.max() ?? 0
        return largest + (config.n - counted.count) < config.quorum
    }
}
