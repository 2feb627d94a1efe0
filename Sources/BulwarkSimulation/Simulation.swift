import BulwarkAdversary
import BulwarkConsensus
import BulwarkCore
import BulwarkStorage
import HeapModule

/// A deterministic simulation of a whole cluster: n replicas running the real consensus core
/// and state machine, a virtual clock, a simulated network that drops, duplicates, delays and
/// reorders messages and partitions replicas, crashes that lose everything not persisted, and
/// closed-loop clients issuing signed requests. One seed decides everything.
public final class Simulation {
    public let options: SimulationOptions
    let config: ClusterConfig
    let verifier = SignatureVerifier()
    var rng: SimulationRandom
    var now: UInt64 = 0
    var queue = Heap<Scheduled>()
    var sequence: UInt64 = 0
    var nodes: [SimNode] = []
    var clients: [SimClient] = []
    var maliciousClients: [MaliciousClient] = []
    /// Partition group of each replica; nil when fully connected.
    var groups: [Int]?
    var finished = false
    var report: SimulationReport
    /// Receives one line per notable event (view changes, crashes, state transfers) when set.
    public var trace: ((String) -> Void)?
    /// State root each replica reported after each height, for the agreement checker.
    var stateRoots: [Height: [Int: Digest]] = [:]

    struct Scheduled: Comparable {
        let time: UInt64
        let sequence: UInt64
        let event: SimEvent
        static func < (a: Scheduled, b: Scheduled) -> Bool { (a.time, a.sequence) < (b.time, b.sequence) }
        static func == (a: Scheduled, b: Scheduled) -> Bool { a.time == b.time && a.sequence == b.sequence }
    }

    enum SimEvent {
        case deliver(to: Int, Message)
        case clientRequest(to: Int, Request)
        case timer(node: Int, TimerID, incarnation: Int)
        case reply(client: Int, from: Int, Reply)
        case clientIssue(Int)
        case clientRetry(Int, requestID: UInt64)
        case crash(Int, torn: Bool, downMs: UInt64)
        case crashPrimary(downMs: UInt64)
        case restart(Int)
        case partition([Int])
        case heal
        case endOfFaults
        case stateTransferRetry(Int, height: Height, checkpoint: CheckpointProof?)
        case maliciousClient(Int)
        case finish
    }

    public init(options: SimulationOptions) {
        self.options = options
        rng = SimulationRandom(seed: options.seed)
        report = SimulationReport(options: options)
        var keyRandom = SimulationRandom(seed: options.seed &* 0x2545_F491_4F6C_DD1D)
        let keys = (0..<options.replicas).map { _ in
            PrivateKey(seed: (0..<32).map { _ in UInt8.random(in: 0...255, using: &keyRandom) })!
        }
        var parameters = ProtocolParameters()
        parameters.viewChangeTimeoutMs = 800
        parameters.batchDelayMs = 5
        parameters.batchRequestsMax = 16
        parameters.checkpointInterval = 8
        parameters.watermarkWindow = 32
        // Virtual time starts at 0, so a proposal stamped an hour back reads as 0: inside the
        // default 30 s bound for the first 30 s of a run, which most runs never leave. With
        // the run's timeouts scaled down, so is the bound, and such a lie is caught.
        parameters.timestampSkewMsMax = 2_000
        let clusterID = ClusterID(raw: Bytes32((0..<32).map { _ in UInt8.random(in: 0...255, using: &keyRandom) })!)
        config = try! ClusterConfig.layout(keys: keys.map(\.publicKey), host: "sim", basePort: 1000, clusterID: clusterID,
                                           parameters: parameters)
        nodes = keys.enumerated().map { i, key in SimNode(id: i, key: key, limits: parameters) }
        clients = (0..<options.clients).map { i in
            SimClient(index: i, key: PrivateKey(seed: (0..<32).map { _ in UInt8.random(in: 0...255, using: &keyRandom) })!)
        }
        maliciousClients = (0..<options.maliciousClients).map { i in
            MaliciousClient(index: i, key: PrivateKey(seed: (0..<32).map { _ in UInt8.random(in: 0...255, using: &keyRandom) })!,
                            config: config)
        }
        if let twin = options.twins, twin < nodes.count {
            // A second process with the same validator key and id, with its own state.
            nodes.append(SimNode(id: nodes.count, key: keys[twin], limits: parameters, replica: twin))
        }
        for (replica, behaviours) in options.byzantine where replica < nodes.count {
            nodes[replica].adversary = Adversary(behaviours: behaviours, config: config, id: ReplicaID(replica), key: keys[replica])
        }
    }

    // MARK: - Running

    public func run() -> SimulationReport {
        for node in nodes { boot(node) }
        scheduleFaults()
        for client in clients { schedule(at: rng.between(0, 300), .clientIssue(client.index)) }
        for client in maliciousClients { schedule(at: rng.between(0, 300), .maliciousClient(client.index)) }
        var steps: UInt64 = 0
        let stepsMax: UInt64 = 20_000_000
        while !finished, let next = queue.popMin() {
            if next.time > options.deadlineMs { break }
            now = next.time
            handle(next.event)
            steps += 1
            if steps >= stepsMax {
                report.failures.append("simulation exceeded \(stepsMax) events")
                break
            }
        }
        report.virtualTimeMs = now
        SimulationChecker(simulation: self).check()
        return report
    }

    func schedule(at time: UInt64, _ event: SimEvent) {
        sequence += 1
        queue.insert(Scheduled(time: time, sequence: sequence, event: event))
    }

    func handle(_ event: SimEvent) {
        switch event {
        case let .deliver(to, message):
            if nodes[to].core != nil { step(nodes[to], .message(message)) }
        case let .clientRequest(to, request):
            if nodes[to].core != nil { step(nodes[to], .clientRequest(request)) }
        case let .timer(node, timer, incarnation):
            if nodes[node].incarnation == incarnation, nodes[node].core != nil { step(nodes[node], .timerFired(timer)) }
        case let .reply(client, from, reply): clients[client].receive(reply, from: from, simulation: self)
        case let .clientIssue(client): clients[client].issueNext(simulation: self)
        case let .clientRetry(client, requestID): clients[client].retry(requestID: requestID, simulation: self)
        case let .crash(node, torn, downMs): crash(nodes[node], torn: torn, downMs: downMs)
        case let .crashPrimary(downMs):
            // The primary of the view most running replicas are settled in: a replica alone in a
            // view change (partitioned, or Byzantine) does not make its view's primary the one.
            let settled = nodes.compactMap { node in node.core.flatMap { $0.isChangingView ? nil : $0.view } }
            let view = Dictionary(grouping: settled, by: { $0 }).map { (view: $0.key, count: $0.value.count) }
                .max { ($0.count, $0.view) < ($1.count, $1.view) }?.view ?? 0
            let primary = nodes[Int(config.primary(of: view))]
            guard primary.core != nil else { return }
            // With a twin of the primary still running, the primary has not gone away.
            if options.twins != primary.replica {
                report.primaryCrashedAtHeight = nodes.compactMap { $0.core?.chain.height }.max() ?? 0
            }
            crash(primary, torn: false, downMs: downMs)
        case let .restart(node): if nodes[node].core == nil { boot(nodes[node]) }
        case let .partition(groups):
            trace?("\(now)ms partition \(groups)")
            self.groups = groups
        case .heal:
            trace?("\(now)ms partition healed")
            groups = nil
        case .endOfFaults:
            groups = nil
            for node in nodes where node.core == nil { boot(node) }
        case let .stateTransferRetry(node, height, checkpoint):
            if nodes[node].core != nil { transferState(to: nodes[node], height: height, checkpoint: checkpoint) }
        case let .maliciousClient(client): maliciousClients[client].attack(simulation: self)
        case .finish: finished = true
        }
    }

    /// Schedules every fault of this run inside the fault window.
    func scheduleFaults() {
        let window = options.faultWindowMs
        for _ in 0..<options.partitions {
            let start = rng.between(500, window - 4000)
            let groups: [Int]
            if rng.chance(500) {
                let isolated = Int(rng.between(0, UInt64(options.replicas - 1)))
                groups = (0..<options.replicas).map { $0 == isolated ? 1 : 0 }
            } else {
                groups = (0..<options.replicas).map { _ in Int(rng.between(0, 1)) }
            }
            schedule(at: start, .partition(groups))
            schedule(at: start + rng.between(300, 3000), .heal)
        }
        for _ in 0..<options.crashes {
            let node = Int(rng.between(0, UInt64(options.replicas - 1)))
            schedule(at: rng.between(300, window - 3000), .crash(node, torn: rng.chance(500), downMs: rng.between(200, 2500)))
        }
        for node in nodes where node.adversary?.behaviours.contains(.crashLoop) == true {
            var at = rng.between(300, 1000)
            while at + 1000 < window {
                schedule(at: at, .crash(node.id, torn: rng.chance(500), downMs: rng.between(200, 600)))
                at += rng.between(1000, 2000)
            }
        }
        if options.crashPrimary {
            schedule(at: rng.between(1000, window / 2), .crashPrimary(downMs: rng.between(2000, 5000)))
        }
        schedule(at: window, .endOfFaults)
    }

    // MARK: - Network

    /// Whether nodes `a` and `b` (indices; a twin sits where its replica does) can talk.
    func connected(_ a: Int, _ b: Int) -> Bool { groups == nil || groups![nodes[a].replica] == groups![nodes[b].replica] }

    var faultsActive: Bool { now < options.faultWindowMs }

    /// Delivery time for one message, or nil if the network loses it.
    func transit() -> UInt64? {
        report.messagesSent += 1
        if faultsActive && rng.chance(options.dropPerMille) {
            report.messagesDropped += 1
            return nil
        }
        return now + 1 + rng.between(0, options.jitterMsMax)
    }

    /// Sends from node `from` to every node running replica `replica` (two where there are twins).
    func send(_ message: Message, from: Int, toReplica replica: Int, delayMs: UInt64 = 0) {
        for node in nodes where node.replica == replica && node.id != from {
            send(message, from: from, to: node.id, delayMs: delayMs)
        }
    }

    func send(_ message: Message, from: Int, to: Int, delayMs: UInt64 = 0) {
        guard to != from else { return }
        guard connected(from, to) else {
            report.messagesSent += 1
            report.messagesDropped += 1
            return
        }
        guard let arrival = transit() else { return }
        let at = arrival + delayMs
        schedule(at: at, .deliver(to: to, message))
        if faultsActive && rng.chance(options.duplicatePerMille) {
            schedule(at: at + rng.between(0, 20), .deliver(to: to, message))
        }
    }

    func sendRequest(_ request: Request, to replica: Int) {
        for node in nodes where node.replica == replica {
            guard let at = transit() else { continue }
            schedule(at: at, .clientRequest(to: node.id, request))
        }
    }

    func sendReply(_ reply: Reply, from: Int, to client: Int) {
        guard let at = transit() else { return }
        schedule(at: at, .reply(client: client, from: from, reply))
    }

    // MARK: - Replica shell

    func boot(_ node: SimNode) {
        node.incarnation += 1
        // Rebuild the state machine from the durable ledger, as a restarted process would.
        node.state = KeyValueState(limits: config.parameters)
        var tip = ChainTip.genesis
        var executed: [ExecutedCheckpoint] = []
        let checkpoint = node.stable.flatMap { $0.height <= UInt64(node.log.count) ? $0 : nil }
        for entry in node.log {
            let before = tip
            _ = try! node.state.execute(entry.block)
            tip = tip.appending(entry.block.header, hash: entry.block.hash)
            if tip.height > (checkpoint?.height ?? 0), tip.height % config.parameters.checkpointInterval == 0 {
                executed.append(ExecutedCheckpoint(header: entry.block.header, historyBefore: before.history,
                                                   stateRoot: node.state.stateRoot))
            }
        }
        let recovery = Recovery(tip: tip, checkpoint: checkpoint, wal: node.wal, clients: node.state.clientReplies,
                                executed: executed)
        node.core = Replica(config: config, id: ReplicaID(node.replica), key: node.key, verifier: verifier, recovery: recovery)
        let actions = node.core!.start(nowMs: now)
        process(actions, at: node)
    }

    func crash(_ node: SimNode, torn: Bool, downMs: UInt64) {
        guard node.core != nil else { return }
        trace?("\(now)ms r\(node.id) crashes\(torn ? " mid-step" : "") for \(downMs)ms at height \(node.log.count)")
        if torn {
            // Crash in the middle of the node's next step, after some of its actions.
            node.crashMidStep = downMs
            return
        }
        node.core = nil
        node.incarnation += 1
        schedule(at: now + downMs, .restart(node.id))
    }

    func step(_ node: SimNode, _ event: Event) {
        guard node.core != nil else { return }
        let actions = node.core!.step(event, nowMs: now)
        process(actions, at: node)
    }

    func process(_ actions: [Action], at node: SimNode) {
        var actions = actions
        if let downMs = node.crashMidStep, !actions.isEmpty {
            // Lose everything after a random action: persisted records survive, the rest never happened.
            actions = Array(actions.prefix(Int(rng.between(0, UInt64(actions.count - 1)))))
            node.crashMidStep = nil
            run(actions, at: node)
            node.core = nil
            node.incarnation += 1
            schedule(at: now + downMs, .restart(node.id))
            return
        }
        run(actions, at: node)
    }

    private func run(_ actions: [Action], at node: SimNode) {
        // A Byzantine replica's honest core decides; its adversary rewrites what leaves.
        let actions = node.adversary != nil ? node.adversary!.rewrite(actions) : actions
        var followUps: [Event] = []
        for action in actions {
            switch action {
            case let .persist(record): node.wal.append(record)
            case let .send(message, to):
                send(message, from: node.id, toReplica: Int(to), delayMs: node.adversary?.delayMs(message) ?? 0)
            case let .setTimer(timer, afterMs):
                schedule(at: now + afterMs, .timer(node: node.id, timer, incarnation: node.incarnation))
            case let .execute(block, certificate):
                followUps.append(execute(LedgerEntry(block: block, certificate: certificate), at: node))
            case let .reply(reply):
                if let client = clients.firstIndex(where: { $0.key.publicKey == reply.client }) {
                    sendReply(reply, from: node.replica, to: client)
                }
            case let .checkpointStable(proof):
                node.stable = proof
                if !node.executionCertificates.contains(where: { $0.height == proof.height }) {
                    node.executionCertificates.append(proof.certificate)
                }
                // Records at or below a stable checkpoint are never needed again.
                node.wal.removeAll { record in record.height.map { $0 <= proof.height } ?? false }
            case let .requestStateTransfer(height, checkpoint):
                trace?("\(now)ms r\(node.id) state transfer to \(height) from \(node.log.count)")
                transferState(to: node, height: height, checkpoint: checkpoint)
            case .refuse: report.requestsRefused += 1
            case let .suspectedPrimary(view, primary, mean, allowed):
                report.slowPrimarySuspicions += 1
                trace?("\(now)ms r\(node.id) suspects primary \(primary) of view \(view): turnaround \(mean)ms > \(allowed)ms")
            case let .enteredView(view, primary):
                report.viewChanges += 1
                trace?("\(now)ms r\(node.id) entered view \(view) (primary \(primary)) at height \(node.log.count)")
            case let .broadcast(.viewChange(vc)) where vc.replica == ReplicaID(node.replica):
                trace?("\(now)ms r\(node.id) view-change to \(vc.newView) (checkpoint \(vc.checkpointHeight), \(vc.prepared.count) prepared)")
                for other in 0..<options.replicas where other != node.replica { send(.viewChange(vc), from: node.id, toReplica: other) }
            case let .fault(reason): report.failures.append("replica \(node.id) fault at \(now)ms: \(reason)")
            case let .broadcast(message):
                for other in 0..<options.replicas where other != node.replica { send(message, from: node.id, toReplica: other) }
            }
        }
        for event in followUps where node.core != nil { step(node, event) }
    }

    /// Appends a committed block to the node's durable ledger and executes it.
    func execute(_ entry: LedgerEntry, at node: SimNode) -> Event {
        let height = entry.block.height
        precondition(height == UInt64(node.log.count) + 1, "replica \(node.id) executes out of order")
        node.log.append(entry)
        let outcomes = try! node.state.execute(entry.block)
        var replies: [Reply] = []
        for (request, outcome) in zip(entry.block.requests, outcomes) {
            switch outcome {
            case let .executed(result), let .duplicate(result):
                replies.append(Reply(client: request.client, requestID: request.requestID, height: height,
                                     result: result.encoded()))
            case .stale: break
            }
        }
        let root = node.state.stateRoot
        stateRoots[height, default: [:]][node.id] = root
        return .executed(height: height, stateRoot: root, replies: replies)
    }

    /// Fetches blocks from one connected peer and checks each one itself: no peer is trusted.
    func transferState(to node: SimNode, height: Height, checkpoint: CheckpointProof?) {
        let have = node.log.count
        guard have < Int(height) else {
            step(node, .stateTransferred(tip: node.core!.chain, checkpoint: nil, clients: node.state.clientReplies, executed: []))
            return
        }
        let candidates = nodes.filter {
            $0.id != node.id && $0.core != nil && connected($0.id, node.id) && $0.log.count >= Int(height)
        }
        guard !candidates.isEmpty else {
            schedule(at: now + 200, .stateTransferRetry(node.id, height: height, checkpoint: checkpoint))
            return
        }
        let peer = candidates[Int(rng.between(0, UInt64(candidates.count - 1)))]
        var tip = node.core!.chain
        guard tip.height == UInt64(have) else { return }
        var fetched: [LedgerEntry] = []
        let offered = Array(peer.log[have...])
        for entry in peer.adversary?.served(offered) ?? offered {
            do {
                tip = try tip.verifyNext(entry, config: config, verifier: verifier)
            } catch {
                guard peer.adversary != nil else {
                    report.failures.append("replica \(node.id) rejected block from replica \(peer.id) in state transfer: \(error)")
                    return
                }
                // A lying peer: its blocks fail the checks; ask again (another peer, maybe).
                report.forgedTransfersRejected += 1
                schedule(at: now + 50, .stateTransferRetry(node.id, height: height, checkpoint: checkpoint))
                return
            }
            fetched.append(entry)
        }
        if tip.height < height {
            // Cut short: keep nothing from this peer and ask again.
            report.forgedTransfersRejected += 1
            schedule(at: now + 50, .stateTransferRetry(node.id, height: height, checkpoint: checkpoint))
            return
        }
        var executed: [ExecutedCheckpoint] = []
        var history = node.core!.chain.history
        for entry in fetched {
            node.log.append(entry)
            _ = try! node.state.execute(entry.block)
            let root = node.state.stateRoot
            stateRoots[entry.block.height, default: [:]][node.id] = root
            if entry.block.height % config.parameters.checkpointInterval == 0 {
                executed.append(ExecutedCheckpoint(header: entry.block.header, historyBefore: history, stateRoot: root))
            }
            history.append(leafHash: MerkleTree.leafHash(entry.block.hash))
        }
        let verified = checkpoint.flatMap { $0.height <= tip.height ? $0 : nil }
        step(node, .stateTransferred(tip: tip, checkpoint: verified, clients: node.state.clientReplies, executed: executed))
    }

    /// Replicas that follow the protocol; the checkers judge only these.
    var honestNodes: [SimNode] { nodes.filter { $0.adversary == nil && $0.replica != options.twins } }

    /// The cluster configuration every replica of this run uses.
    public var clusterConfig: ClusterConfig { config }

    /// Writes replica `replica`'s ledger, with its execution certificates, through the real
    /// block log into `directory`, as a replica process would have it on disk.
    public func writeLedger(replica: Int, to directory: String, fileSystem: any FileSystem = PosixFileSystem()) throws {
        let node = nodes[replica]
        let log = try BlockLog(directory: directory, fileSystem: fileSystem)
        let certificates = Dictionary(grouping: node.executionCertificates, by: \.height)
        for entry in node.log {
            try log.append(entry)
            for certificate in certificates[entry.block.height] ?? [] { try log.append(certificate) }
        }
        try log.sync()
    }

    /// Called by clients when all have finished: let laggards catch up, then stop.
    func clientFinished() {
        if clients.allSatisfy(\.isDone) {
            schedule(at: max(now, options.faultWindowMs) + 5000, .finish)
        }
    }
}

final class SimNode {
    /// Index in `Simulation.nodes`.
    let id: Int
    /// The replica it runs as: its index, except for a twin.
    let replica: Int
    let key: PrivateKey
    var core: Replica?
    /// Key histories in memory, which cannot fail to read: executions here use `try!`.
    var state: KeyValueState
    /// Durable: the block log and the write-ahead log survive crashes.
    var log: [LedgerEntry] = []
    var wal: [WALRecord] = []
    var stable: CheckpointProof?
    /// Durable: every stable checkpoint's certificate, stored in the ledger.
    var executionCertificates: [ExecutionCertificate] = []
    var incarnation = 0
    var crashMidStep: UInt64?
    /// Set for a Byzantine replica.
    var adversary: Adversary?

    init(id: Int, key: PrivateKey, limits: ProtocolParameters, replica: Int? = nil) {
        self.id = id
        self.replica = replica ?? id
        self.key = key
        self.state = KeyValueState(limits: limits)
    }
}
