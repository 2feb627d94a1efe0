import BulwarkAdversary
import BulwarkConsensus
import BulwarkCore
import BulwarkStateMachine

/// A small cluster of real cores run in memory to a realistic state (blocks committed, a
/// stable checkpoint, a view change under way), remembering every message they sent: what the
/// structure-aware replica harness starts from and draws its inputs from.
struct ReplicaScenario {
    let config: ClusterConfig
    let keys: [PrivateKey]
    let client: PrivateKey
    var replicas: [Replica]
    var nowMs: UInt64 = 1_700_000_000_000
    /// Every message any replica sent, in order (bounded by the scenario's length).
    var sent: [Message] = []
    var requests: [Request] = []
    private var network: [(to: Int, message: Message)] = []
    private var requestTimers: [Int: UInt64] = [:]
    private var requestID: UInt64 = 0

    init() {
        keys = (0..<4).map { PrivateKey(seed: [UInt8($0 + 1), 0xf0] + Array(repeating: 0, count: 30))! }
        client = PrivateKey(seed: [0xc1, 0xf0] + Array(repeating: 0, count: 30))!
        var parameters = ProtocolParameters()
        parameters.checkpointInterval = 2
        parameters.watermarkWindow = 8
        parameters.batchRequestsMax = 2
        parameters.viewChangeTimeoutMs = 1000
        config = try! ClusterConfig.layout(keys: keys.map(\.publicKey), host: "127.0.0.1", basePort: 7000,
                                           clusterID: ClusterID(raw: Bytes32(Array(repeating: 0xf5, count: 32))!),
                                           parameters: parameters)
        let verifier = SignatureVerifier()
        let config = self.config
        // Blocks are not executed here (see `executed`): no request ever shows as executed.
        let executed = ExecutedClients(KeyValueState(genesis: config))
        replicas = keys.enumerated().map { i, key in
            Replica(config: config, id: ReplicaID(i), key: key, verifier: verifier, executedClients: executed)
        }
        for i in 0..<4 { _ = replicas[i].start(nowMs: nowMs) }
    }

    /// Replica 0 after five committed heights and a stable checkpoint, in view 0.
    static let committed: ReplicaScenario = {
        var s = ReplicaScenario()
        for _ in 0..<5 { s.request(everyone: true) }
        return s
    }()

    /// The same cluster after a request that prepared but never committed, and a view change
    /// that replicas 1..3 started (replica 0, the old primary, has heard their view-changes).
    static let changingView: ReplicaScenario = {
        var s = committed
        s.request(everyone: true, deliverCommits: false)
        s.nowMs += 10_000
        for i in 1..<4 { s.step(i, .timerFired(.request(generation: s.lastRequestGeneration(i)))) }
        s.deliver { to, message in
            if case .viewChange = message { return to == 0 }
            return false
        }
        return s
    }()

    /// The generation of the request timer replica `i` armed last (what a shell's timer fires with).
    func lastRequestGeneration(_ i: Int) -> UInt64 { requestTimers[i] ?? 0 }

    mutating func request(everyone: Bool, deliverCommits: Bool = true) {
        requestID += 1
        let request = Request.signed(by: client, cluster: config.clusterID, requestID: requestID,
                                     operation: .put(key: Array("k\(requestID % 3)".utf8), value: Array("v\(requestID)".utf8)))
        requests.append(request)
        for i in 0..<(everyone ? 4 : 1) { step(i, .clientRequest(request)) }
        step(0, .timerFired(.batch))
        deliver { _, message in
            if case .commit = message { return deliverCommits }
            return true
        }
    }

    /// Steps replica `i`, executing delivered blocks as a shell would (results are empty and
    /// the state root a function of the height: every replica computes the same).
    mutating func step(_ i: Int, _ event: Event) {
        var events = [event]
        while !events.isEmpty {
            let out = replicas[i].step(events.removeFirst(), nowMs: nowMs)
            for action in out.actions {
                switch action {
                case let .broadcast(message):
                    sent.append(message)
                    for j in 0..<4 where j != i { network.append((j, message)) }
                case let .send(message, to):
                    sent.append(message)
                    network.append((Int(to), message))
                case let .execute(block, _):
                    events.append(Self.executed(block.height, config))
                case let .setTimer(.request(generation), _):
                    requestTimers[i] = generation
                default: break
                }
            }
        }
    }

    static func executed(_ height: Height, _ config: ClusterConfig) -> Event {
        let root = height % config.parameters.checkpointInterval == 0 ? Digest.sha256(Array("root \(height)".utf8)) : nil
        return .executed(height: height, stateRoot: root, replies: [])
    }

    /// Delivers queued messages that `accept` lets through, until none are left (bounded).
    mutating func deliver(_ accept: (Int, Message) -> Bool) {
        var count = 0
        while !network.isEmpty && count < 10_000 {
            let (to, message) = network.removeFirst()
            count += 1
            if accept(to, message) { step(to, .message(message)) }
        }
    }
}

/// Reads an input as a stream of choices; past its end every read gives zero.
struct InputReader {
    let bytes: [UInt8]
    var offset = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var isAtEnd: Bool { offset >= bytes.count }

    mutating func byte() -> UInt8 {
        defer { offset += 1 }
        return offset < bytes.count ? bytes[offset] : 0
    }

    mutating func uint64() -> UInt64 {
        var value: UInt64 = 0
        for _ in 0..<8 { value = value << 8 | UInt64(byte()) }
        return value
    }

    /// A length-prefixed chunk (at most `max` bytes).
    mutating func chunk(max: Int) -> [UInt8] {
        let requested = Int(byte()) << 8 | Int(byte())
        // Reads past the end leave `offset` beyond the input: start from the end then.
        let start = min(offset, bytes.count)
        let length = min(requested, max, bytes.count - start)
        offset = start + length
        return Array(bytes[start..<(start + length)])
    }
}

extension ReplicaScenario {
    /// One input per message kind the scenario sent, integer field and boundary value: replica 0
    /// in each state gets that message with that field at that value (the inputs `fuzz` reads).
    static func boundarySeeds() -> [[UInt8]] {
        let pool = changingView.sent
        var firstOfKind: [String: Int] = [:]
        for (index, message) in pool.enumerated() where firstOfKind[message.kind] == nil { firstOfKind[message.kind] = index }
        func be(_ value: UInt64) -> [UInt8] { (0..<8).reversed().map { UInt8(truncatingIfNeeded: value >> (8 * $0)) } }
        var seeds: [[UInt8]] = []
        for state in [UInt8(0), 1] {
            for index in firstOfKind.values.sorted() {
                for field in UInt64(0)..<15 {
                    for value in Adversary.boundaryValues(near: 5) {
                        seeds.append([state] + be(UInt64(index)) + [1] + be(field) + be(value))
                    }
                }
            }
        }
        return seeds
    }

    /// Interprets `data` as events for replica 0 in one of the scenario's states: honest
    /// messages sent again, honest messages with an integer field at a value from the input
    /// (signed again by the replica that sent them, so they pass signature checks), raw bytes
    /// decoded as messages, client requests, timers and time. The core checks its invariants
    /// after every event; a trap is a finding.
    static func fuzz(_ data: [UInt8]) {
        var input = InputReader(data)
        var s = input.byte() % 2 == 0 ? committed : changingView
        // Messages come from the longer run, view-changes included, whatever state replica 0 is in.
        s.sent = changingView.sent
        let adversaries = (1..<4).map { i in
            Adversary(behaviours: [.mutateIntegers], config: s.config, id: ReplicaID(i), key: s.keys[i])
        }
        var steps = 0
        while !input.isAtEnd && steps < 64 {
            steps += 1
            let pick = Int(input.uint64() % UInt64(max(1, s.sent.count)))
            switch input.byte() % 7 {
            case 0:
                if !s.sent.isEmpty { s.step(0, .message(s.sent[pick])) }
            case 1:
                guard !s.sent.isEmpty else { continue }
                let message = s.sent[pick]
                let signer = Int(message.sender ?? 1)
                let adversary = adversaries[max(0, min(2, signer - 1))]
                let field = input.uint64()
                let value = input.uint64()
                s.step(0, .message(adversary.mutated(message, field: field, to: value)))
            case 2:
                if let message = try? Message(decoding: input.chunk(max: 1 << 16)) { s.step(0, .message(message)) }
            case 3:
                if !s.requests.isEmpty { s.step(0, .clientRequest(s.requests[pick % s.requests.count])) }
            case 4:
                let timers: [TimerID] = [.batch, .retransmit, .request(generation: input.uint64()), .newView(input.uint64())]
                s.step(0, .timerFired(timers[pick % timers.count]))
            case 5:
                s.nowMs &+= input.uint64() % 100_000
            default:
                // Two fields at once: a proof whose height and size both lie, and so on.
                guard !s.sent.isEmpty else { continue }
                let adversary = adversaries[Int(input.byte() % 3)]
                let once = adversary.mutated(s.sent[pick], field: input.uint64(), to: input.uint64())
                s.step(0, .message(adversary.mutated(once, field: input.uint64(), to: input.uint64())))
            }
        }
    }
}
