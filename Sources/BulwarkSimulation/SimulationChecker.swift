import BulwarkConsensus
import BulwarkCore
import BulwarkStateMachine
import BulwarkTestSupport
import BulwarkVerify

/// The properties every simulated run must have (ARCHITECTURE.md §7, PITFALLS "Properties to check").
struct SimulationChecker {
    let simulation: Simulation
    /// Each honest node's ledger, by node, as its disk holds it at the end.
    var ledgers: [Int: [LedgerEntry]]
    var config: ClusterConfig { simulation.config }

    init(simulation: Simulation) {
        self.simulation = simulation
        ledgers = Dictionary(uniqueKeysWithValues: simulation.honestNodes.map { ($0.id, simulation.ledger(of: $0).entries) })
    }

    /// Honest nodes' ledgers in node order.
    var logs: [[LedgerEntry]] { simulation.honestNodes.map { ledgers[$0.id] ?? [] } }
    var longest: [LedgerEntry] { logs.max(by: { $0.count < $1.count }) ?? [] }

    func check() {
        let nodes = simulation.honestNodes
        simulation.report.refusedStarts = simulation.nodes.filter { $0.shell == nil && $0.refusedToStart != nil }.count
        // A replica a configuration change removed stopped at its last epoch's end.
        simulation.report.heights = nodes.filter { $0.refusedToStart == nil && !$0.removed }
            .map { UInt64(ledgers[$0.id]?.count ?? 0) }
        simulation.report.maxView = nodes.compactMap { $0.shell?.core.view }.max() ?? 0
        simulation.report.strangersRefused = nodes.filter { $0.adversary == nil }
            .reduce(0) { $0 + ($1.shell?.core.rejections[.unknownClient] ?? 0) }
        checkAgreement()
        checkChains()
        checkExecution()
        checkLiveness()
        checkRepairedLedgers()
        checkPermissions()
        HistoryChecker(simulation: simulation, longest: longest).check()
    }

    /// A replica whose disk was corrupted repaired it from peers: the ledger it ends with
    /// passes the offline audit (`bulwark-verify log`).
    func checkRepairedLedgers() {
        for node in simulation.honestNodes where node.diskCorrupted && node.refusedToStart == nil {
            let report = LedgerAudit(config: config, threads: 1)
                .audit(directory: SimNode.dataDirectory + "/blocks", fileSystem: node.fileSystem)
            if let problem = report.problem { fail("repair: replica \(node.id)'s ledger fails the audit: \(problem)") }
        }
    }

    func fail(_ message: String) { simulation.report.failures.append(message) }

    /// Agreement: no two replicas hold different blocks, or different state roots, at one height.
    func checkAgreement() {
        let top = logs.map(\.count).max() ?? 0
        guard top > 0 else { return }
        for index in 0..<top {
            let hashes = Set(logs.filter { $0.count > index }.map { $0[index].block.hash })
            if hashes.count > 1 { return fail("agreement: replicas hold \(hashes.count) different blocks at height \(index + 1)") }
        }
        let honest = Set(simulation.honestNodes.map(\.id))
        for height in simulation.stateRoots.keys.sorted() {
            let roots = Set(simulation.stateRoots[height]!.filter { honest.contains($0.key) }.values)
            if roots.count > 1 { return fail("agreement: replicas report \(roots.count) state roots at height \(height)") }
        }
    }

    /// Every replica's ledger is a valid hash chain of blocks with valid commit certificates
    /// (each against the validators of the epoch in force at its height, which a replay of the
    /// ledger from genesis tells) and valid client signatures.
    func checkChains() {
        for node in simulation.honestNodes {
            var tip = ChainTip.genesis
            var state = KeyValueState(genesis: config)
            for entry in ledgers[node.id] ?? [] {
                let governance = state.governance
                do {
                    tip = try tip.verifyNext(entry, config: governance.config, epoch: governance.epoch, verifier: simulation.verifier)
                    _ = try state.execute(entry.block)
                } catch {
                    return fail("chain: replica \(node.id): \(error)")
                }
            }
        }
    }

    /// Validity and exactly-once: replaying the longest ledger, every request was issued by a
    /// workload client, each executes once, and each result a client accepted is the result
    /// the ledger gives.
    func checkExecution() {
        // A Byzantine primary may order requests of its own key as a client's (any id).
        let byzantineClients = simulation.options.byzantine.filter { $0.value.contains(.unauthorizedRequest) }.keys
            .filter { $0 < simulation.nodes.count }.map { (simulation.nodes[$0].key.publicKey, UInt64.max) }
        let issued = Dictionary(simulation.clients.map { ($0.key.publicKey, $0.lastRequestID) }
                                + simulation.maliciousClients.map { ($0.attack.client, $0.attack.lastID) } + byzantineClients,
                                uniquingKeysWith: { first, _ in first })
        var state = KeyValueState(genesis: config)
        var executions: [RequestIdentity: Int] = [:]
        var results: [RequestIdentity: [UInt8]] = [:]
        for entry in longest {
            let outcomes = try! state.execute(entry.block)
            for (request, outcome) in zip(entry.block.requests, outcomes) {
                guard let last = issued[request.client], request.requestID >= 1, request.requestID <= last else {
                    return fail("validity: height \(entry.block.height) holds a request no client issued")
                }
                // Not every replica checks every signature in a proposal (SPEC.md §14.1): the
                // ones that do must have kept every forged request out.
                guard simulation.verifier.isValid(request.signature, by: request.client,
                                                  for: request.signedBytes(cluster: config.clusterID)) else {
                    return fail("validity: height \(entry.block.height) holds a request its client did not sign")
                }
                if case let .executed(result) = outcome {
                    let id = RequestIdentity(client: request.client, requestID: request.requestID)
                    executions[id, default: 0] += 1
                    results[id] = result.encoded()
                }
            }
        }
        if let twice = executions.first(where: { $0.value > 1 }) {
            return fail("exactly-once: request \(twice.key.requestID) of a client executed \(twice.value) times")
        }
        for client in simulation.clients {
            for op in client.completed where op.fastReadHeight == nil {
                let id = RequestIdentity(client: op.request.client, requestID: op.request.requestID)
                guard executions[id] == 1 else {
                    return fail("durability: client \(client.index) request \(op.request.requestID) was acknowledged but is not in the ledger")
                }
                guard results[id] == op.result else {
                    return fail("results: client \(client.index) request \(op.request.requestID) accepted a result the ledger does not give")
                }
            }
        }
    }

    /// Permissions (SPEC.md §19): replaying the longest ledger, every request the ledger let
    /// through is one a plain model of the policy in force allows, and every one it denied the
    /// model denies too; the model follows each policy change the ledger applied.
    func checkPermissions() {
        guard config.policy == .closed else { return }
        var state = KeyValueState(genesis: config)
        var model = PolicyModel(mode: config.policy, admins: Set(config.admins))
        let replicaKeys = Set(simulation.nodes.flatMap { $0.keys.map(\.publicKey) })
        for entry in longest {
            let outcomes = try! state.execute(entry.block)
            for (request, outcome) in zip(entry.block.requests, outcomes) {
                guard case let .executed(result) = outcome else { continue }
                let place = "height \(entry.block.height), request \(request.requestID) of \(request.client.short)…"
                if case .permissionDenied = result {
                    simulation.report.permissionDenials += 1
                    if replicaKeys.contains(request.client) { simulation.report.replicaRequestsDenied += 1 }
                }
                switch request.operation {
                case let .approvePolicy(approval):
                    guard case let .policyApproved(progress) = result, progress.applied != nil else { continue }
                    simulation.report.policyChanges += 1
                    for edit in approval.edits where !model.apply(edit) {
                        return fail("permissions: at \(place) the ledger applied '\(edit)', which the model refuses")
                    }
                case .approveConfig, .range:
                    continue
                default:
                    let denied = model.firstDenied(request.operation, by: request.client)
                    if case .permissionDenied = result {
                        if denied == nil { return fail("permissions: at \(place) the ledger denied \(request.operation), which the policy allows") }
                    } else if let denied {
                        return fail("permissions: at \(place) \(request.operation) executed (\(result)) although the policy denies \(denied.permission) on \(String(decoding: denied.key, as: UTF8.self))")
                    }
                }
            }
        }
    }

    /// Once faults end, every request completes, every replica catches up, and a crashed
    /// primary was replaced by a view change with commits continuing.
    func checkLiveness() {
        for client in simulation.clients where !client.isDone {
            fail("liveness: client \(client.index) finished \(client.completed.count) of \(simulation.options.requestsPerClient) requests by \(simulation.options.deadlineMs)ms")
        }
        let heights = simulation.report.heights
        if Set(heights).count > 1 {
            fail("liveness: replicas did not catch up: heights \(heights.map(String.init).joined(separator: "/"))")
        }
        if let crashHeight = simulation.report.primaryCrashedAtHeight {
            // Views start again at 0 in every epoch: count the views entered, not the last one.
            if simulation.report.viewChanges == 0 { fail("view change: the primary crashed but no replica left view 0") }
            if (heights.max() ?? 0) <= crashHeight { fail("view change: no commits after the primary crashed at height \(crashHeight)") }
        }
    }
}

struct RequestIdentity: Hashable {
    var client: PublicKey
    var requestID: UInt64
}
