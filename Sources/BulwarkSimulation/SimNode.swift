import BulwarkAdversary
import BulwarkConsensus
import BulwarkCore
import BulwarkShell
import BulwarkStorage
import Logging

/// One simulated replica process: the production `ReplicaShell` over a simulated disk of its
/// own, reached through the simulated network and clock.
final class SimNode {
    /// Index in `Simulation.nodes`.
    let id: Int
    /// The replica it runs as: its index, except for a twin.
    let replica: Int
    /// The keys this replica may run with, the newest first: a supervisor starts it with the
    /// one its ledger's epoch names (a key replaced by a configuration change).
    var keys: [PrivateKey]
    var key: PrivateKey { keys[0] }
    /// Removed from the cluster by a configuration change: it is never started again.
    var removed = false
    /// A replica outside cluster.json that has not joined yet: it is not started until its
    /// join (fetching and checking the ledger as a client) finishes.
    var join: (ledger: JoiningLedger, progress: JoinProgress)?
    var awaitingJoin = false
    /// The last frames it sent to other replicas; what it sent before it retired, which its
    /// ghost (the old process, or a thief of its old key) keeps re-sending.
    var recentFrames: [(replica: Int, frame: [UInt8])] = []
    var ghostFrames: [(replica: Int, frame: [UInt8])] = []
    /// Survives crashes: what was durable stays, the rest is lost (or torn).
    let fileSystem = SimulatedFileSystem()
    /// The running process; nil while it is down.
    var shell: ReplicaShell?
    /// Bumped at every start and every crash: timers and sends of an older process are void.
    var incarnation = 0
    /// The running process's network, clock and workers.
    var io: SimIO?
    /// Inputs that arrived at this instant and wait for the process's loop, which takes them
    /// all in one `handle` call as `ReplicaNode`'s loop drains its inbox (group commit).
    /// Process memory: lost when the process goes down.
    var inbox: [ShellInput] = []
    /// Set for a Byzantine replica.
    var adversary: Adversary?
    /// How long the node stays down once the crash point armed in its disk is reached.
    var crashPointDownMs: UInt64?
    /// Set when the process stopped itself: it goes down after the step, for this long.
    var pendingCrashDownMs: UInt64?
    /// Start-ups that failed in a row (a supervisor retries them, backing off), and why the
    /// last one did. A replica still refusing at the end (damage it must not repair by itself)
    /// is one an operator must attend to: it counts as down, not as a failure.
    var failedStarts = 0
    var refusedToStart: String?
    /// Its disk was corrupted at least once: its final ledger must pass the offline audit.
    var diskCorrupted = false
    /// Its write-ahead log was corrupted and is still in place: it refuses to start until the
    /// operator moves the log aside and starts it with --rejoin.
    var walDamaged = false
    /// Its shell found the damage (scrubbing) and stopped to repair it.
    var damageFound = false
    /// How its next start treats an empty disk: a new cluster's at first; after its disk was
    /// wiped, rejoining (or, in the negative control, as if new).
    var startup: ShellStartup = .genesis

    static let dataDirectory = "/data"

    init(id: Int, key: PrivateKey, replica: Int? = nil) {
        self.id = id
        self.replica = replica ?? id
        self.keys = [key]
    }

    /// The process goes down (or a new one begins): what the old one held in memory, its
    /// timers and its pending work are void.
    func endIncarnation() {
        shell = nil
        io = nil
        inbox = []
        incarnation += 1
    }
}

/// The network, clock and workers one incarnation of a node sees. Work runs at once; what an
/// earlier incarnation (a crashed process) or a process past its crash point would do is void.
final class SimIO: ShellNetwork, ShellClock, ShellWorkers {
    unowned let simulation: Simulation
    let node: Int
    let incarnation: Int

    init(simulation: Simulation, node: Int, incarnation: Int) {
        self.simulation = simulation
        self.node = node
        self.incarnation = incarnation
    }

    var alive: Bool {
        let node = simulation.nodes[node]
        return node.incarnation == incarnation && !node.fileSystem.hasCrashed
    }

    func send(_ frame: [UInt8], to peer: ReplicaID, afterMs: UInt64) {
        guard alive else { return }
        if simulation.options.reconfigure {
            let node = simulation.nodes[node]
            node.recentFrames.append((Int(peer), frame))
            if node.recentFrames.count > 32 { node.recentFrames.removeFirst() }
        }
        simulation.sendFrame(frame, from: node, toReplica: Int(peer), delayMs: afterMs)
    }

    func send(_ frame: [UInt8], toClient client: PublicKey) {
        guard alive else { return }
        simulation.sendToClient(frame, from: node, client: client)
    }

    /// The simulated network routes frames by replica id and authenticates nothing, so a new
    /// epoch changes nothing in it; every receiving core checks signatures against its epoch.
    func configure(_ config: ClusterConfig) {}

    var nowMs: UInt64 { simulation.now }
    var monotonicNs: UInt64 { simulation.now &* 1_000_000 }

    func schedule(_ timer: ShellTimer, afterMs: UInt64) {
        guard alive else { return }
        simulation.schedule(at: simulation.now + afterMs, .timer(node: node, timer, incarnation: incarnation))
    }

    func serve(_ kind: ServingClass, _ work: @escaping @Sendable () -> Void) -> Bool {
        work()
        return true
    }

    func background(_ work: @escaping @Sendable () -> Void, then done: @escaping () -> Void) {
        work()
        simulation.schedule(at: simulation.now + 1, .background(node: node, incarnation: incarnation, done))
    }
}

extension Simulation {
    /// Starts node `node`'s process from its disk, as a supervisor would.
    func boot(_ node: SimNode) {
        guard node.shell == nil, !node.removed, !node.awaitingJoin else { return }
        node.endIncarnation()
        let io = SimIO(simulation: self, node: node.id, incarnation: node.incarnation)
        var started: ReplicaShell?
        var failure: (any Error)?
        // The newest key first; an older one while the ledger is still in an epoch that names it.
        for key in node.keys where started == nil {
            do {
                started = try ReplicaShell(config: config, id: ReplicaID(node.replica), key: key,
                                           dataDirectory: SimNode.dataDirectory, startup: node.startup,
                                           fileSystem: node.fileSystem, network: io,
                                           clock: io, workers: io, logger: Self.logger, snapshotInterval: Self.snapshotInterval,
                                           segmentBytesMax: Self.segmentBytesMax,
                                           scrubIntervalMs: options.diskFaults ? 250 : 2000,
                                           verifier: verifier)
            } catch {
                failure = failure ?? error
                if node.fileSystem.hasCrashed { break }
            }
        }
        guard let shell = started else { return failedStart(node, failure!) }
        node.failedStarts = 0
        node.refusedToStart = nil
        shell.notify = { [unowned self, unowned node] notice in observe(notice, at: node) }
        shell.onFault = { [unowned self, unowned node] reason in faulted(node, reason) }
        shell.onRetire = { [unowned self, unowned node] reason in retired(node, reason) }
        if node.adversary != nil {
            let box = Unchecked(node)
            shell.interceptor = ReplicaShell.Interceptor(
                rewrite: { node.adversary!.rewrite($0) }, serve: { box.value.adversary!.served($0) },
                delayMs: { node.adversary!.delayMs($0) }, progress: { node.adversary!.progress($0) })
        }
        node.shell = shell
        node.io = io
        shell.start()
        settle(node)
    }

    /// A start-up that failed: with disk faults injected, a supervisor tries again, backing off
    /// up to 5 s (a transient error must not keep a replica down; damage that persists does).
    /// Without disk faults, an honest replica that cannot restart is a failure. (A twin finds
    /// its key's votes in its ledger that its own log never signed — the other twin's — and
    /// refuses to start: the guard against signing twice, working.)
    func failedStart(_ node: SimNode, _ error: any Error) {
        node.failedStarts += 1
        node.refusedToStart = "\(error)"
        if node.fileSystem.hasCrashed {
            // Crashed while starting: lose what was unsynced and start again.
            node.fileSystem.crash(tornBytes: tornBytes)
        } else if !options.diskFaults, honestNodes.contains(where: { $0 === node }) {
            report.failures.append("replica \(node.id) cannot restart at \(now)ms: \(error)")
            return
        }
        trace?("\(now)ms r\(node.id) failed to start (\(error)); retrying")
        if node.walDamaged, node.failedStarts >= 3 { moveDamagedLogAside(node) }
        schedule(at: now + min(5_000, 150 << min(node.failedStarts, 6)), .restart(node.id))
    }

    /// The bytes of an unsynced tail a power loss keeps: none, or with disk faults a torn
    /// prefix of any length.
    func tornBytes(_ unsynced: Int) -> Int {
        options.diskFaults ? Int(rng.between(0, UInt64(unsynced))) : 0
    }

    /// The shell stopped itself. Storage that failed because of an injected fault (a crash
    /// point, a full disk, descriptors run out) ends the process, and a supervisor restarts
    /// it; any other fault is a failure of the run.
    func faulted(_ node: SimNode, _ reason: String) {
        let injected = node.fileSystem.hasCrashed || node.fileSystem.diskFull || reason.contains(SimulatedFileSystem.tooManyOpenFiles)
            || (node.diskCorrupted && node.damageFound)
        guard injected else {
            report.failures.append("replica \(node.id) fault at \(now)ms: \(reason)")
            return
        }
        trace?("\(now)ms r\(node.id) stopped: \(reason)")
        node.pendingCrashDownMs = node.pendingCrashDownMs ?? 300
    }

    // MARK: Joining

    /// A replica outside cluster.json starts joining: it fetches the ledger as a client and
    /// checks it from genesis, driving the same state machine as `bulwark node --join`
    /// (`JoinProgress` over `JoiningLedger`), and starts as a validator once an epoch lists it.
    func startJoin(_ node: SimNode) {
        guard node.awaitingJoin, node.join == nil else { return }
        do {
            let ledger = try JoiningLedger(genesis: config, key: node.key.publicKey, dataDirectory: SimNode.dataDirectory,
                                           fileSystem: node.fileSystem, logger: Self.logger)
            node.join = (ledger, JoinProgress(key: node.key.publicKey))
        } catch {
            return report.failures.append("replica \(node.id) cannot start joining: \(error)")
        }
        trace?("\(now)ms r\(node.id) starts joining")
        askToJoin(node)
    }

    func askToJoin(_ node: SimNode) {
        guard let ledger = node.join?.ledger else { return }
        let question = node.join!.progress.ask(ledger)
        sendClientFrame(question.frame, to: Int(question.peer), from: node.key.publicKey)
        schedule(at: now + JoinProgress.answerTimeoutMs, .joinTimeout(node.id, question: question.number))
    }

    /// A frame for a joiner: blocks, or a refusal to serve it.
    func receiveAtJoiner(_ node: SimNode, from replica: Int, _ bytes: [UInt8]) {
        guard let ledger = node.join?.ledger else { return }
        let step: JoinProgress.Step?
        switch try? ClientFrame(decoding: bytes) {
        case let .blocks(entries)?:
            do { step = try node.join!.progress.received(entries, from: ReplicaID(replica), ledger: ledger) } catch {
                return report.failures.append("replica \(node.id) cannot store fetched blocks: \(error)")
            }
        case .refused(_, .unknownClient)?: step = node.join!.progress.refused(by: ReplicaID(replica), ledger: ledger)
        default: return
        }
        step.map { joinStep($0, node) }
    }

    func joinTimedOut(_ node: SimNode, question: Int) {
        guard let ledger = node.join?.ledger, let step = node.join!.progress.timedOut(question: question, ledger: ledger) else {
            return
        }
        joinStep(step, node)
    }

    func joinStep(_ step: JoinProgress.Step, _ node: SimNode) {
        guard let join = node.join else { return }
        switch step {
        case .ask: askToJoin(node)
        case .wait: schedule(at: now + JoinProgress.waitMs, .joinAsk(node.id))
        case let .done(id):
            trace?("\(now)ms r\(node.id) joined as replica \(id) at height \(join.ledger.height)")
            node.join = nil
            node.awaitingJoin = false
            report.replicasJoined += 1
            boot(node)
        case .removed:
            // Added and removed again before it finished joining: it never starts.
            trace?("\(now)ms r\(node.id) was removed before its join finished")
            node.join = nil
            node.awaitingJoin = false
            node.removed = true
        }
    }

    /// A configuration change no longer lists this replica with its key. A replaced key: the
    /// operator restarts it with the new one. Removed: it stays down. Either way what it
    /// signed last keeps arriving (a removed replica that does not know it is removed, an old
    /// key still in the wrong hands), and must count for nothing.
    func retired(_ node: SimNode, _ reason: String) {
        let governance = node.shell?.governance
        trace?("\(now)ms r\(node.id) retired: \(reason)")
        node.pendingCrashDownMs = rng.between(100, 800)
        guard let governance else { return }
        if let validator = governance.config.validator(ReplicaID(node.replica)) {
            if let key = rotationKeys[validator.publicKey] { node.keys = [key] + node.keys.filter { $0.publicKey != key.publicKey } }
            report.keysReplaced += 1
        } else {
            node.removed = true
            report.replicasRemoved += 1
        }
        node.ghostFrames = node.recentFrames
        schedule(at: now + 50, .ghost(node.id))
    }

    /// After every step of a node: a process that reached its crash point, or stopped
    /// itself, goes down now.
    func settle(_ node: SimNode) {
        guard node.shell != nil else { return }
        let powerLoss = node.fileSystem.hasCrashed
        guard let downMs = powerLoss ? node.crashPointDownMs ?? 300 : node.pendingCrashDownMs else { return }
        node.crashPointDownMs = nil
        node.pendingCrashDownMs = nil
        node.endIncarnation()
        // A process that exits keeps what the kernel holds; a crash point loses the unsynced.
        if powerLoss { node.fileSystem.crash(tornBytes: tornBytes) }
        schedule(at: now + downMs, .restart(node.id))
    }

    /// Crashes node `node`: now (losing everything not fsynced), or mid-step, at one of its
    /// next few storage operations.
    func crash(_ node: SimNode, midStep: Bool, downMs: UInt64) {
        guard node.shell != nil else { return }
        trace?("\(now)ms r\(node.id) crashes\(midStep ? " mid-step" : "") for \(downMs)ms at height \(node.shell!.height)")
        if midStep {
            node.fileSystem.crashAfterOperations = node.fileSystem.operations + Int(rng.between(0, 6))
            node.crashPointDownMs = downMs
            return
        }
        node.endIncarnation()
        node.fileSystem.crash(tornBytes: tornBytes)
        schedule(at: now + downMs, .restart(node.id))
    }

    /// Queues `input` for node `node`'s loop, if it is up. The first input of an instant
    /// schedules the loop's turn at the same instant, after every event already due then: all
    /// frames arriving at once reach the shell in one `handle` call, as in production.
    func deliver(_ input: ShellInput, to node: SimNode) {
        guard node.shell != nil else { return }
        if node.inbox.isEmpty { schedule(at: now, .drain(node: node.id, incarnation: node.incarnation)) }
        node.inbox.append(input)
    }

    /// Node `node`'s loop takes everything queued.
    func drain(_ node: SimNode, incarnation: Int) {
        guard node.incarnation == incarnation, let shell = node.shell else { return }
        let inputs = node.inbox
        node.inbox = []
        if inputs.count > 1 { report.batchedDeliveries += 1 }
        shell.handle(inputs)
        settle(node)
    }

    func observe(_ notice: ShellNotice, at node: SimNode) {
        switch notice {
        case let .executed(height, _, _, root?), let .transferredBlock(height, root?):
            // Only where production computes a root (checkpoints): observing must not settle
            // the authenticated map more often than a real replica does.
            stateRoots[height, default: [:]][node.id] = root
        case .refused: report.requestsRefused += 1
        case .deliveredAfterTransfer: report.deliveredAfterTransfer += 1
        case .transferOvertaken: report.transfersOvertaken += 1
        case let .damageFound(damage):
            node.damageFound = true
            report.damageFound += 1
            trace?("\(now)ms r\(node.id) found damage: \(damage)")
        case let .enteredEpoch(epoch, firstHeight):
            report.epochsEntered = max(report.epochsEntered, epoch)
            trace?("\(now)ms r\(node.id) entered epoch \(epoch) at height \(firstHeight)")
        case let .enteredView(view, primary):
            report.viewChanges += 1
            trace?("\(now)ms r\(node.id) entered view \(view) (primary \(primary)) at height \(node.shell?.height ?? 0)")
        case let .suspectedPrimary(view, primary, mean, allowed):
            report.slowPrimarySuspicions += 1
            trace?("\(now)ms r\(node.id) suspects primary \(primary) of view \(view): turnaround \(mean)ms > \(allowed)ms")
        case let .sent(message, epoch): noteSigned(message, epoch: epoch, by: node)
        case let .sentViewChange(vc):
            trace?("\(now)ms r\(node.id) view-change to \(vc.newView) (checkpoint \(vc.checkpointHeight), \(vc.prepared.count) prepared)")
        case let .stateTransferStarted(from, target):
            trace?("\(now)ms r\(node.id) state transfer to \(target) from \(from)")
        case let .transferRejected(peer):
            if nodes.contains(where: { $0.replica == Int(peer) && ($0.adversary != nil || $0.replica == options.twins) }) {
                report.forgedTransfersRejected += 1
            }
        default: break
        }
    }

    static let logger = Logger(label: "bulwark.sim", factory: { _ in SwiftLogNoOpLogHandler() })
    /// Small enough that runs write snapshots and seal block-log segments.
    static let snapshotInterval: Height = 16
    static let segmentBytesMax: UInt64 = 16 << 10
}
