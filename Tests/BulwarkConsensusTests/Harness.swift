import BulwarkConsensus
import BulwarkCore
import BulwarkStateMachine
import BulwarkShell

/// Drives a handful of real cores by hand: the test decides what is delivered, when and to
/// whom; executed blocks go through the real state machine.
struct Harness {
    let config: ClusterConfig
    let keys: [PrivateKey]
    let verifier = SignatureVerifier()
    var replicas: [Replica]
    /// Each replica's state machine; its core learns what it needs of it from events.
    var states: [KeyValueState]
    var nowMs: UInt64 = 1_000_000
    /// Messages in flight: (destination, message).
    var network: [(to: Int, message: Message)] = []
    var executed: [[Block]]
    var replies: [[Reply]]
    var actions: [[Action]]
    /// Every step's output of each replica, records and actions apart, in order.
    var readies: [[Ready]]
    let client = PrivateKey(seed: Array(repeating: 9, count: 32))!

    init(n: Int = 4, checkpointInterval: UInt64 = 2, window: UInt64 = 4, batchRequestsMax: Int = 1,
         blocksInFlightMax: UInt64 = 1, tune: (inout ProtocolParameters) -> Void = { _ in }) {
        keys = (0..<n).map { i in PrivateKey(seed: [UInt8(i + 1)] + Array(repeating: 0, count: 31))! }
        var parameters = ProtocolParameters()
        parameters.checkpointInterval = checkpointInterval
        parameters.watermarkWindow = window
        parameters.batchRequestsMax = batchRequestsMax
        parameters.blocksInFlightMax = blocksInFlightMax
        parameters.batchDelayMs = 5
        parameters.viewChangeTimeoutMs = 1000
        tune(&parameters)
        config = try! ClusterConfig.layout(keys: keys.map(\.publicKey), host: "h", basePort: 100,
                                           clusterID: ClusterID(raw: Bytes32(Array(repeating: 3, count: 32))!),
                                           parameters: parameters)
        let verifier = self.verifier
        let config = self.config
        let states = (0..<n).map { _ in KeyValueState(genesis: config) }
        self.states = states
        replicas = keys.enumerated().map { i, key in
            Replica(config: config, id: ReplicaID(i), key: key, verifier: verifier, executedClients: ExecutedClients(states[i]))
        }
        executed = Array(repeating: [], count: n)
        replies = Array(repeating: [], count: n)
        actions = Array(repeating: [], count: n)
        readies = Array(repeating: [], count: n)
    }

    var cluster: ClusterID { config.clusterID }

    func request(_ id: UInt64, _ op: LedgerOperation = .put(key: [1], value: [2])) -> Request {
        Request.signed(by: client, cluster: cluster, requestID: id, operation: op)
    }

    /// Feeds one event to replica `i` and carries out its actions (sends go into `network`).
    @discardableResult
    mutating func step(_ i: Int, _ event: Event) -> [Action] {
        let ready = replicas[i].step(event, nowMs: nowMs)
        let out = ready.actions
        readies[i].append(ready)
        actions[i].append(contentsOf: out)
        var followUps: [Event] = []
        for action in out {
            switch action {
            case let .broadcast(message):
                for j in replicas.indices where j != i { network.append((j, message)) }
            case let .send(message, to): network.append((Int(to), message))
            case let .execute(block, _):
                executed[i].append(block)
                let blockReplies = Reply.replies(to: block, outcomes: try! states[i].execute(block))
                followUps.append(.executed(height: block.height, stateRoot: states[i].stateRoot, replies: blockReplies,
                                           policy: states[i].policyIndex))
            case let .reply(reply): replies[i].append(reply)
            case let .replyAgain(client, requestID):
                if let reply = states[i].lastReply(of: client), reply.requestID == requestID { replies[i].append(reply) }
            default: break
            }
        }
        for event in followUps { step(i, event) }
        return out
    }

    /// Delivers queued messages (those `deliver` accepts) until none are left; others are dropped.
    mutating func run(deliver: (Int, Message) -> Bool = { _, _ in true }, rounds: Int = 10_000) {
        var count = 0
        while !network.isEmpty && count < rounds {
            let (to, message) = network.removeFirst()
            count += 1
            if deliver(to, message) { step(to, .message(message)) }
        }
    }

    /// The primary's batch timer firing.
    @discardableResult
    mutating func fireBatch(_ i: Int = 0) -> [Action] { step(i, .timerFired(.batch)) }

    func signedPrePrepare(view: View, height: Height, requests: [Request], by replica: Int,
                          prev: ChainTip = .genesis, timestampMs: UInt64? = nil, txRoot: Digest? = nil) -> PrePrepare {
        let header = BlockHeader(clusterID: cluster, height: height, view: view, timestampMs: timestampMs ?? nowMs,
                                 proposer: ReplicaID(replica), prevBlockHash: prev.blockHash,
                                 txRoot: txRoot ?? Block.txRoot(of: requests, cluster: cluster), historyRoot: prev.history.root)
        return PrePrepare.signed(view: view, block: Block(header: header, requests: requests), by: keys[replica],
                                 replica: ReplicaID(replica), cluster: cluster)
    }

    func prepare(_ pp: PrePrepare, from replica: Int) -> Prepare { prepare(pp.proposal, from: replica) }

    func commit(_ pp: PrePrepare, from replica: Int, view: View? = nil) -> Commit { commit(pp.proposal, from: replica, view: view) }

    func prepare(_ pp: Proposal, from replica: Int) -> Prepare {
        Prepare.signed(view: pp.view, height: pp.height, blockHash: pp.blockHash, by: keys[replica],
                       replica: ReplicaID(replica), cluster: cluster)
    }

    func commit(_ pp: Proposal, from replica: Int, view: View? = nil) -> Commit {
        Commit.signed(view: view ?? pp.view, height: pp.height, blockHash: pp.blockHash, by: keys[replica],
                      replica: ReplicaID(replica), cluster: cluster)
    }
}

extension Action {
    var broadcastMessage: Message? {
        if case let .broadcast(m) = self { return m }
        return nil
    }
}

extension [Action] {
    var broadcasts: [Message] { compactMap(\.broadcastMessage) }
    var viewChanges: [ViewChange] { broadcasts.compactMap { if case let .viewChange(v) = $0 { return v } else { return nil } } }
    var newViews: [NewView] { broadcasts.compactMap { if case let .newView(v) = $0 { return v } else { return nil } } }
    var prepares: [Prepare] { broadcasts.compactMap { if case let .prepare(v) = $0 { return v } else { return nil } } }
    var commits: [Commit] { broadcasts.compactMap { if case let .commit(v) = $0 { return v } else { return nil } } }
    var prePrepares: [PrePrepare] { broadcasts.compactMap { if case let .prePrepare(v) = $0 { return v } else { return nil } } }
}

extension Ready {
    /// What a step sent, and its records: the conveniences of `[Action]` for one step.
    var broadcasts: [Message] { actions.broadcasts }
    var persisted: [WALRecord] { persist }
    var viewChanges: [ViewChange] { actions.viewChanges }
    var prepares: [Prepare] { actions.prepares }
    var commits: [Commit] { actions.commits }
    var prePrepares: [PrePrepare] { actions.prePrepares }

    static func + (a: Ready, b: Ready) -> Ready {
        var sum = a
        sum.append(b)
        return sum
    }

    static func += (a: inout Ready, b: Ready) { a.append(b) }
}

extension Harness {
    /// Every record replica `i` persisted so far, in order: its WAL.
    func persisted(_ i: Int) -> [WALRecord] { readies[i].flatMap(\.persist) }
}
