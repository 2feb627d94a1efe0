import BulwarkAdversary
import BulwarkConsensus
import BulwarkCore
import BulwarkShell
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
    let intake: ShellIntake
    /// Workload clients by key, to route replies (only looked up, never iterated).
    var clientIndex: [PublicKey: Int] = [:]
    /// New keys a configuration change gives replicas, by public key (looked up only).
    var rotationKeys: [PublicKey: PrivateKey] = [:]
    /// Joining replicas by key, to route their fetched blocks (looked up only).
    var joinerIndex: [PublicKey: Int] = [:]
    /// The client that changes the policy (`SimulationOptions.policy`).
    var policyAdmin: Int?
    /// What each honest replica signed where (looked up only).
    var signedPlaces: [SignedPlace: Digest] = [:]
    var signingConflictReported = false
    /// The node whose disk was wiped (`SimulationOptions.wipe`).
    var wipedNode: Int?

    struct Scheduled: Comparable {
        let time: UInt64
        let sequence: UInt64
        let event: SimEvent
        static func < (a: Scheduled, b: Scheduled) -> Bool { (a.time, a.sequence) < (b.time, b.sequence) }
        static func == (a: Scheduled, b: Scheduled) -> Bool { a.time == b.time && a.sequence == b.sequence }
    }

    enum SimEvent {
        case peerFrame(to: Int, from: ReplicaID, [UInt8])
        case clientFrame(to: Int, client: PublicKey, [UInt8])
        case timer(node: Int, ShellTimer, incarnation: Int)
        case background(node: Int, incarnation: Int, () -> Void)
        case toClient(client: Int, from: Int, [UInt8])
        case clientIssue(Int)
        case clientRetry(Int, requestID: UInt64)
        /// A fast read got no 2f+1 agreement in time: the client orders it.
        case clientFastReadExpired(Int, nonce: UInt64)
        case crash(Int, midStep: Bool, downMs: UInt64)
        case crashPrimary(downMs: UInt64)
        case restart(Int)
        case wipe(Int, downMs: UInt64)
        case partition([Int])
        case heal
        case endOfFaults
        case maliciousClient(Int)
        case diskFault(Int, DiskFault)
        case diskFreed(Int)
        case ghost(Int)
        case joinStart(Int)
        case joinAsk(Int)
        case joinTimeout(Int, question: Int)
        case toJoiner(Int, from: Int, [UInt8])
        case drain(node: Int, incarnation: Int)
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
        parameters.stateTransferTimeoutMs = 200
        if options.maxSize {
            parameters.frameBytesMax = 256 << 10
            parameters.batchBytesMax = 128 << 10
            parameters.requestBytesMax = 128 << 10
            parameters.valueBytesMax = 120 << 10
        }
        let clusterID = ClusterID(raw: Bytes32((0..<32).map { _ in UInt8.random(in: 0...255, using: &keyRandom) })!)
        let admins = options.reconfigure || options.grow
            ? (0..<3).map { _ in PrivateKey(seed: (0..<32).map { _ in UInt8.random(in: 0...255, using: &keyRandom) })! }
            : options.policy ? [PrivateKey(seed: (0..<32).map { _ in UInt8.random(in: 0...255, using: &keyRandom) })!] : []
        let config = try! ClusterConfig.layout(keys: keys.map(\.publicKey), host: "sim", basePort: 1000, clusterID: clusterID,
                                               parameters: parameters, admins: admins.map(\.publicKey),
                                               adminThreshold: admins.isEmpty ? 0 : min(2, admins.count),
                                               policy: options.policy ? .closed : .open)
        self.config = config
        intake = ShellIntake(config: config, verifier: verifier)
        nodes = keys.enumerated().map { i, key in SimNode(id: i, key: key) }
        clients = (0..<options.clients).map { i in
            SimClient(index: i, key: PrivateKey(seed: (0..<32).map { _ in UInt8.random(in: 0...255, using: &keyRandom) })!,
                      config: config)
        }
        maliciousClients = (0..<options.maliciousClients).map { i in
            MaliciousClient(index: i, key: PrivateKey(seed: (0..<32).map { _ in UInt8.random(in: 0...255, using: &keyRandom) })!,
                            config: config)
        }
        if let twin = options.twins, twin < nodes.count {
            // A second process with the same validator key and id, with its own state.
            nodes.append(SimNode(id: nodes.count, key: keys[twin], replica: twin))
        }
        if options.grow {
            addJoiners(admins: admins, keyRandom: &keyRandom)
        } else if options.reconfigure {
            addCompetingAdmins(admins, keyRandom: &keyRandom)
        }
        if options.policy, let admin = admins.first {
            policyAdmin = clients.count
            let client = SimClient(index: clients.count, key: admin, config: config)
            client.script = Self.policyChanges(config, clients: clients.map(\.key.publicKey), admin: admin)
            clients.append(client)
        }
        clientIndex = Dictionary(uniqueKeysWithValues: clients.map { ($0.key.publicKey, $0.index) })
        for (replica, behaviours) in options.byzantine where replica < nodes.count {
            nodes[replica].adversary = Adversary(behaviours: behaviours, config: config, id: ReplicaID(replica), key: keys[replica])
        }
    }

    /// The growing run's joiners and admins: three replicas outside cluster.json join, are
    /// added, then removed (4→7→4). Two of the three admins approve each change; the removal is
    /// approved for epoch 1 and retried until epoch 1 is in force.
    func addJoiners(admins: [PrivateKey], keyRandom: inout SimulationRandom) {
        let joinerKeys = (0..<3).map { _ in PrivateKey(seed: (0..<32).map { _ in UInt8.random(in: 0...255, using: &keyRandom) })! }
        let first = ReplicaID(config.n)
        let added = config.validators + joinerKeys.enumerated().map { i, key in
            let port = UInt16(2000 + 3 * i)
            return Validator(id: first + ReplicaID(i), publicKey: key.publicKey, replicaAddress: Address(host: "sim", port: port),
                             clientAddress: Address(host: "sim", port: port + 1), httpAddress: Address(host: "sim", port: port + 2))
        }
        let grown = try! ClusterConfig(clusterID: config.clusterID, validators: added, parameters: config.parameters,
                                       admins: config.admins, adminThreshold: config.adminThreshold)
        for (i, key) in joinerKeys.enumerated() {
            let node = SimNode(id: nodes.count, key: key, replica: Int(first) + i)
            node.awaitingJoin = true
            joinerIndex[key.publicKey] = node.id
            nodes.append(node)
        }
        for admin in admins.prefix(2) {
            let client = SimClient(index: clients.count, key: admin, config: config)
            client.script = [.approveConfig(.init(epoch: 0, config: grown, adminKey: admin)),
                             .approveConfig(.init(epoch: 1, config: config, adminKey: admin))]
            clients.append(client)
        }
    }

    /// The reconfiguring run's admins: admin 0 approves X, admin 1 Y, admin 2 both in an
    /// order the seed picks; the first to reach two approvals wins, and the other is refused
    /// or dropped (`competingChanges`).
    func addCompetingAdmins(_ admins: [PrivateKey], keyRandom: inout SimulationRandom) {
        let rotated = PrivateKey(seed: (0..<32).map { _ in UInt8.random(in: 0...255, using: &keyRandom) })!
        rotationKeys[rotated.publicKey] = rotated
        let (x, y) = Self.competingChanges(config, rotated: rotated.publicKey)
        let both: [LedgerOperation] = rng.chance(500) ? [.approveConfig(.init(epoch: 0, config: x, adminKey: admins[2])),
                                                         .approveConfig(.init(epoch: 0, config: y, adminKey: admins[2]))]
                                                      : [.approveConfig(.init(epoch: 0, config: y, adminKey: admins[2])),
                                                         .approveConfig(.init(epoch: 0, config: x, adminKey: admins[2]))]
        for (i, script) in [[LedgerOperation.approveConfig(.init(epoch: 0, config: x, adminKey: admins[0]))],
                            [.approveConfig(.init(epoch: 0, config: y, adminKey: admins[1]))], both].enumerated() {
            let admin = SimClient(index: clients.count, key: admins[i], config: config)
            admin.script = script
            clients.append(admin)
        }
    }

    /// The policy run's admin script (see `SimulationOptions.policy`): each approval applies at
    /// once (threshold 1), so each signs the sequence the ones before it leave.
    static func policyChanges(_ config: ClusterConfig, clients: [PublicKey], admin: PrivateKey) -> [LedgerOperation] {
        func grant(_ role: String, _ permission: Permission, _ prefix: String) -> Grant {
            Grant(permission: permission, prefix: Array(prefix.utf8))
        }
        let roles = ["kv", "owner", "payer"]
        let owns = PolicyEdit.grant(role: "owner", grant("owner", .write, "acct/{client}/"))
        let readsAccounts = PolicyEdit.grant(role: "owner", grant("owner", .read, "acct"))
        let pays = PolicyEdit.grant(role: "payer", grant("payer", .credit, "acct"))
        let writesK = PolicyEdit.grant(role: "kv", grant("kv", .write, "k"))
        let readsK = PolicyEdit.grant(role: "kv", grant("kv", .read, "k"))
        let binds = clients.enumerated().map { i, key in PolicyEdit.bind(Binding.sorted(name: "\(i)", client: key, roles: roles)) }
        let last = clients.count - 1
        let changes: [[PolicyEdit]] = [
            [owns, readsAccounts, pays, writesK, readsK] + binds,
            [.revoke(role: "kv", grant("kv", .write, "k"))],
            [writesK],
            [.revoke(role: "payer", grant("payer", .credit, "acct"))],
            [.unbind(name: "\(last)"), binds[last]],
            [pays],
        ]
        return changes.enumerated().map { sequence, edits in
            .approvePolicy(PolicyApprovalRequest(cluster: config.clusterID, epoch: 0, sequence: UInt64(sequence), edits: edits,
                                                 adminKey: admin))
        }
    }

    // MARK: - Running

    public func run() -> SimulationReport {
        for node in nodes { boot(node) }
        scheduleFaults()
        for client in clients {
            // Admins act somewhere in the fault window: a change may meet a view change, a
            // crash or a partition.
            let start = client.script.isEmpty ? rng.between(0, 300) : rng.between(300, max(400, options.faultWindowMs / 2))
            schedule(at: start, .clientIssue(client.index))
        }
        for client in maliciousClients { schedule(at: rng.between(0, 300), .maliciousClient(client.index)) }
        // Joiners start anywhere in the fault window: the late ones join from far behind.
        for node in nodes where node.awaitingJoin { schedule(at: rng.between(200, options.faultWindowMs), .joinStart(node.id)) }
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
        if let wiped = wipedNode {
            report.rejoined = nodes[wiped].shell.map { !$0.isProbing && $0.core.rejoining == nil } ?? false
            report.rejoinFloor = nodes[wiped].shell?.core.signingFloor
        }
        SimulationChecker(simulation: self).check()
        return report
    }

    func schedule(at time: UInt64, _ event: SimEvent) {
        sequence += 1
        queue.insert(Scheduled(time: time, sequence: sequence, event: event))
    }

    func handle(_ event: SimEvent) {
        switch event {
        case let .peerFrame(to, from, bytes):
            switch intake.peer(bytes, from: from) {
            case let .accepted(input): deliver(input, to: nodes[to])
            case .dropped: report.framesDropped += 1
            }
        case let .clientFrame(to, client, bytes):
            // A process that is down has no listener: nothing answers.
            guard let io = nodes[to].io else { return }
            switch intake.client(bytes, from: client, answeringThrough: io) {
            case let .accepted(input): deliver(input, to: nodes[to])
            case .dropped: report.requestsRefused += 1
            }
        case let .drain(node, incarnation): drain(nodes[node], incarnation: incarnation)
        case let .timer(node, timer, incarnation):
            guard nodes[node].incarnation == incarnation, let shell = nodes[node].shell else { return }
            shell.fire(timer)
            settle(nodes[node])
        case let .background(node, incarnation, done):
            guard nodes[node].incarnation == incarnation, nodes[node].shell != nil else { return }
            done()
            settle(nodes[node])
        case let .toClient(client, from, bytes): receiveAtClient(client, from: from, bytes)
        case let .joinStart(node): startJoin(nodes[node])
        case let .joinAsk(node): askToJoin(nodes[node])
        case let .joinTimeout(node, question): joinTimedOut(nodes[node], question: question)
        case let .toJoiner(node, from, bytes): receiveAtJoiner(nodes[node], from: from, bytes)
        case let .clientIssue(client): clients[client].issueNext(simulation: self)
        case let .clientRetry(client, requestID): clients[client].retry(requestID: requestID, simulation: self)
        case let .clientFastReadExpired(client, nonce): clients[client].fastReadExpired(nonce: nonce, simulation: self)
        case let .crash(node, midStep, downMs): crash(nodes[node], midStep: midStep, downMs: downMs)
        case let .crashPrimary(downMs): crashPrimary(downMs: downMs)
        case let .restart(node): boot(nodes[node])
        case let .wipe(node, downMs): wipe(nodes[node], downMs: downMs)
        case let .partition(groups):
            trace?("\(now)ms partition \(groups)")
            self.groups = groups
        case .heal:
            trace?("\(now)ms partition healed")
            groups = nil
        case .endOfFaults:
            groups = nil
            for node in nodes {
                node.fileSystem.diskFull = false
                node.fileSystem.failingOpens = 0
                boot(node)
            }
        case let .maliciousClient(client): maliciousClients[client].attack(simulation: self)
        case let .diskFault(node, fault): inject(fault, at: nodes[node])
        case let .ghost(node):
            // A retired replica's old messages keep arriving, until the faults end.
            guard faultsActive else { return }
            for (replica, frame) in nodes[node].ghostFrames { sendFrame(frame, from: node, toReplica: replica) }
            schedule(at: now + rng.between(50, 200), .ghost(node))
        case let .diskFreed(node):
            trace?("\(now)ms r\(node) disk has space again")
            nodes[node].fileSystem.diskFull = false
        case .finish:
            // A flipped bit in a sealed segment is found by scrubbing, one segment at a time:
            // the run goes on (to its deadline at most) until every damaged replica found it,
            // so the checkers judge the repair, not how far the rotation got.
            let unfound = honestNodes.contains { $0.diskCorrupted && !$0.damageFound && $0.shell != nil }
            if unfound, now + 1000 <= options.deadlineMs {
                schedule(at: now + 1000, .finish)
            } else {
                finished = true
            }
        }
    }

    /// The two competing changes of a reconfiguring run: X replaces replica 3's key with
    /// `rotated` and halves the batch size (with 5 or more replicas it also removes the last
    /// one); Y only changes parameters (a checkpoint every 4 blocks).
    static func competingChanges(_ genesis: ClusterConfig, rotated: PublicKey) -> (ClusterConfig, ClusterConfig) {
        var validators = genesis.validators
        validators[3].publicKey = rotated
        if validators.count >= 5 { validators.removeLast() }
        var xParameters = genesis.parameters
        xParameters.batchRequestsMax = 8
        var yParameters = genesis.parameters
        yParameters.checkpointInterval = 4
        let x = try! ClusterConfig(clusterID: genesis.clusterID, validators: validators, parameters: xParameters,
                                   admins: genesis.admins, adminThreshold: genesis.adminThreshold)
        let y = try! ClusterConfig(clusterID: genesis.clusterID, validators: genesis.validators, parameters: yParameters,
                                   admins: genesis.admins, adminThreshold: genesis.adminThreshold)
        return (x, y)
    }

    /// Crashes the primary of the view most running replicas are settled in: a replica alone
    /// in a view change (partitioned, or Byzantine) does not make its view's primary the one.
    func crashPrimary(downMs: UInt64) {
        // In the middle of the load: while some request waits (else a little later, within the
        // fault window), so that the crash must lead to a view change. In a closed cluster the
        // workload's requests wait unordered until the admin's first policy change binds them.
        let bound = policyAdmin.map { !clients[$0].completed.isEmpty } ?? true
        if !bound || !clients.contains(where: { $0.current != nil }), now + 20 < options.faultWindowMs {
            return schedule(at: now + 20, .crashPrimary(downMs: downMs))
        }
        let settled = nodes.compactMap { node in node.shell.flatMap { $0.core.isChangingView ? nil : $0.core.view } }
        let view = Dictionary(grouping: settled, by: { $0 }).map { (view: $0.key, count: $0.value.count) }
            .max { ($0.count, $0.view) < ($1.count, $1.view) }?.view ?? 0
        let primary = nodes[Int(config.primary(of: view))]
        guard primary.shell != nil else { return }
        // With a twin of the primary still running, the primary has not gone away.
        if options.twins != primary.replica {
            report.primaryCrashedAtHeight = nodes.compactMap { $0.shell?.height }.max() ?? 0
        }
        crash(primary, midStep: false, downMs: downMs)
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
            schedule(at: rng.between(300, window - 3000), .crash(node, midStep: rng.chance(500), downMs: rng.between(200, 2500)))
        }
        for node in nodes where node.adversary?.behaviours.contains(.crashLoop) == true {
            var at = rng.between(300, 1000)
            while at + 1000 < window {
                schedule(at: at, .crash(node.id, midStep: rng.chance(500), downMs: rng.between(200, 600)))
                at += rng.between(1000, 2000)
            }
        }
        if options.crashPrimary {
            schedule(at: rng.between(1000, window / 2), .crashPrimary(downMs: rng.between(2000, 5000)))
        }
        scheduleWipe()
        if options.diskFaults { scheduleDiskFaults() }
        schedule(at: window, .endOfFaults)
    }

    // MARK: - Network

    /// Whether nodes `a` and `b` (indices; a twin sits where its replica does) can talk.
    func connected(_ a: Int, _ b: Int) -> Bool {
        guard let groups else { return true }
        // A replica that joined later sits in group 0.
        func group(_ node: Int) -> Int { nodes[node].replica < groups.count ? groups[nodes[node].replica] : 0 }
        return group(a) == group(b)
    }

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

    /// Sends a frame from node `from` to every node running replica `replica` (two where
    /// there are twins).
    func sendFrame(_ frame: [UInt8], from: Int, toReplica replica: Int, delayMs: UInt64 = 0) {
        guard fitsAFrame(frame, from: from, to: "replica \(replica)") else { return }
        for node in nodes where node.replica == replica && node.id != from {
            guard connected(from, node.id) else {
                report.messagesSent += 1
                report.messagesDropped += 1
                continue
            }
            guard let arrival = transit() else { continue }
            let at = arrival + delayMs
            let sender = ReplicaID(nodes[from].replica)
            schedule(at: at, .peerFrame(to: node.id, from: sender, frame))
            if faultsActive && rng.chance(options.duplicatePerMille) {
                schedule(at: at + rng.between(0, 20), .peerFrame(to: node.id, from: sender, frame))
            }
        }
    }

    /// A client's request, sent to every node running `replica`.
    func sendRequest(_ request: Request, to replica: Int, from client: PublicKey) {
        report.clientRequestsSent += 1
        sendClientFrame(ClientFrame.request(request).encoded(), to: replica, from: client)
    }

    /// A frame from a client, sent to every node running `replica`.
    func sendClientFrame(_ frame: [UInt8], to replica: Int, from client: PublicKey) {
        for node in nodes where node.replica == replica {
            guard let at = transit() else { continue }
            schedule(at: at, .clientFrame(to: node.id, client: client, frame))
        }
    }

    /// A frame over `frameBytesMax` (of the genesis configuration; the runs' changes keep it)
    /// never arrives: a real link closes on it. An honest replica must never build one.
    func fitsAFrame(_ frame: [UInt8], from: Int, to: String) -> Bool {
        guard frame.count > config.parameters.frameBytesMax else { return true }
        report.oversizedFrames += 1
        if nodes[from].adversary == nil, nodes[from].replica != options.twins {
            report.failures.append("honest replica \(nodes[from].replica) built a \(frame.count)-byte frame for \(to), over frameBytesMax (\(config.parameters.frameBytesMax))")
        }
        return false
    }

    /// A frame from node `from` for a client: only workload clients read theirs.
    func sendToClient(_ frame: [UInt8], from: Int, client: PublicKey) {
        guard fitsAFrame(frame, from: from, to: "a client") else { return }
        if let joiner = joinerIndex[client] {
            guard let at = transit() else { return }
            return schedule(at: at, .toJoiner(joiner, from: nodes[from].replica, frame))
        }
        guard let index = clientIndex[client], let at = transit() else { return }
        schedule(at: at, .toClient(client: index, from: nodes[from].replica, frame))
    }

    func receiveAtClient(_ client: Int, from replica: Int, _ bytes: [UInt8]) {
        switch try? ClientFrame(decoding: bytes) {
        case let .reply(reply)?: clients[client].receive(reply, from: replica, simulation: self)
        case let .refused(requestID, refusal)?:
            clients[client].receive(refusal, requestID: requestID, from: replica, simulation: self)
        case let .epochProofs(nonce, steps)?:
            clients[client].receiveEpochProofs(nonce: nonce, steps, from: replica, simulation: self)
        case let .fastReadAnswer(nonce, height, result)?:
            clients[client].receiveFastRead(nonce: nonce, .init(height: height, result: result), from: replica, simulation: self)
        default: return
        }
    }

    /// Replicas that follow the protocol; the checkers judge only these.
    var honestNodes: [SimNode] { nodes.filter { $0.adversary == nil && $0.replica != options.twins } }

    /// The cluster configuration every replica of this run uses.
    public var clusterConfig: ClusterConfig { config }

    /// Writes replica `replica`'s ledger, with its execution certificates, through the real
    /// block log into `directory`, as a replica process would have it on disk.
    public func writeLedger(replica: Int, to directory: String, fileSystem: any FileSystem = PosixFileSystem()) throws {
        let (entries, certificates) = ledger(of: nodes[replica])
        let byHeight = Dictionary(grouping: certificates, by: \.height)
        let log = try BlockLog(directory: directory, fileSystem: fileSystem)
        for entry in entries {
            try log.append(entry)
            for certificate in byHeight[entry.block.height] ?? [] { try log.append(certificate) }
        }
        try log.sync()
    }

    /// Node `node`'s ledger as its disk holds it: blocks, and execution certificates.
    func ledger(of node: SimNode) -> (entries: [LedgerEntry], certificates: [ExecutionCertificate]) {
        let log: BlockLog
        if let shell = node.shell {
            log = shell.blockLog
        } else {
            guard let opened = try? BlockLog(directory: SimNode.dataDirectory + "/blocks", fileSystem: node.fileSystem,
                                             segmentBytesMax: Self.segmentBytesMax) else { return ([], []) }
            log = opened
        }
        var entries: [LedgerEntry] = []
        for height in stride(from: Height(1), through: log.height, by: 1) {
            guard let entry = try? log.entry(at: height) else { break }
            entries.append(entry)
        }
        return (entries, log.executionCertificates)
    }

    /// Called by clients when all have finished: let laggards catch up, then stop.
    func clientFinished() {
        if clients.allSatisfy(\.isDone) {
            schedule(at: max(now, options.faultWindowMs) + 5000, .finish)
        }
    }
}
