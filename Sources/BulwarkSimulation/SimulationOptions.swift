import BulwarkConsensus
import BulwarkAdversary
import BulwarkCore
import BulwarkTestSupport

/// The simulator's only source of randomness: `SeededRandom` (SplitMix64). One seed fixes
/// every choice, so a run replays bit for bit.
public typealias SimulationRandom = SeededRandom

extension SeededRandom {
    /// True with probability `perMille`/1000 (integer arithmetic: no floating point anywhere
    /// a decision is made).
    mutating func chance(_ perMille: UInt32) -> Bool { UInt32(next() % 1000) < perMille }
    mutating func between(_ low: UInt64, _ high: UInt64) -> UInt64 { low + next() % (high - low + 1) }
}

/// Everything that shapes one simulated run. Printed in full before the run, so a failure can
/// be replayed from the printed line alone.
public struct SimulationOptions: Sendable, CustomStringConvertible {
    public var seed: UInt64
    public var replicas: Int = 4
    public var clients: Int = 4
    public var requestsPerClient: Int = 20
    /// Message loss while faults are active, per mille.
    public var dropPerMille: UInt32 = 0
    public var duplicatePerMille: UInt32 = 0
    /// Extra random delay per message, so messages overtake each other.
    public var jitterMsMax: UInt64 = 2
    public var partitions: Int = 0
    public var crashes: Int = 0
    /// Crash whichever replica is primary at a moment in the middle of the load.
    public var crashPrimary: Bool = false
    /// Faults happen only before this virtual time; afterwards the network is perfect and
    /// every replica is up, and liveness is judged.
    public var faultWindowMs: UInt64 = 15_000
    /// Every request must have completed, and every replica caught up, by this virtual time.
    public var deadlineMs: UInt64 = 90_000
    /// Byzantine replicas (at most f for the checkers to hold) and what each one does. The
    /// checkers judge honest replicas only.
    public var byzantine: [Int: Set<Behaviour>] = [:]
    /// Clients that misbehave: bad signatures, reused request ids with other operations, one
    /// id with different operations to different replicas, oversized requests, floods.
    public var maliciousClients: Int = 0
    /// Twins: a second process run with this replica's key and id (both count as Byzantine).
    public var twins: Int?
    /// Disk faults: torn tails at every crash, corrupted sectors (a sealed block-log segment,
    /// a snapshot, the write-ahead log), a full disk for a while, opens that fail.
    public var diskFaults = false
    /// Configuration changes during the faults (SPEC.md §18): three admins (threshold 2)
    /// approve two competing proposals, one replacing replica 3's key (and, with 5 or more
    /// replicas, removing the last one, which then keeps sending its old messages), the other
    /// changing parameters; whichever reaches the threshold first wins.
    public var reconfigure = false
    /// 4→7→4: three replicas outside cluster.json join with `--join` (some from far behind,
    /// starting late in the run), an admin adds them, then removes them again.
    public var grow = false
    /// Client permissions (SPEC.md §19): a closed cluster whose admin binds the clients, each
    /// owning its account (`acct/{client}/`), any may pay into any, and all share the `k` keys;
    /// then takes writes on `k` away and gives them back, takes payments away and gives them
    /// back, and rebinds a client, while the load runs.
    public var policy = false
    /// Wipe one honest replica's disk in the middle of the load and restart it with
    /// `--rejoin` (SPEC.md §14.4).
    public var wipe = false
    /// The negative control of `wipe`: restart the wiped replica as a new cluster's
    /// (`--genesis`), without the signing floor, so the checkers can show what it guards.
    public var unguardedRejoin = false
    /// Messages at the largest sizes the parameters allow: a small frame (256 KiB), requests
    /// and batches of half of it, and every value written at `valueBytesMax`, so each block is
    /// a batch at `batchBytesMax` and every view change and state transfer moves full blocks.
    /// The network drops any frame over `frameBytesMax`, as a real link closes, and a frame
    /// an honest replica built over it is a failure.
    public var maxSize = false

    public init(seed: UInt64) { self.seed = seed }

    /// The fault mix the CI seed range uses: derived from the seed alone.
    public static func mixed(seed: UInt64, replicas: Int = 4) -> SimulationOptions {
        var rng = SimulationRandom(seed: seed ^ 0x5EED_F00D)
        var options = SimulationOptions(seed: seed)
        options.replicas = replicas
        options.clients = Int(rng.between(2, 6))
        options.requestsPerClient = Int(rng.between(8, 24))
        options.dropPerMille = UInt32(rng.between(0, 200))
        options.duplicatePerMille = UInt32(rng.between(0, 100))
        options.jitterMsMax = rng.chance(500) ? rng.between(5, 40) : 2
        options.partitions = Int(rng.between(0, 2))
        options.crashes = Int(rng.between(0, 2))
        options.crashPrimary = rng.chance(400)
        options.diskFaults = rng.chance(200)
        options.maxSize = rng.chance(150)
        return options
    }

    public var description: String {
        "seed=\(seed) replicas=\(replicas) clients=\(clients) requests=\(requestsPerClient) drop=\(dropPerMille)‰ "
            + "dup=\(duplicatePerMille)‰ jitter=\(jitterMsMax)ms partitions=\(partitions) crashes=\(crashes) "
            + "crash-primary=\(crashPrimary) fault-window=\(faultWindowMs)ms deadline=\(deadlineMs)ms"
            + (byzantine.isEmpty ? "" : " byzantine=\(byzantineArgument)")
            + (maliciousClients == 0 ? "" : " malicious-clients=\(maliciousClients)")
            + (twins.map { " twins=\($0)" } ?? "")
            + (diskFaults ? " disk-faults" : "")
            + (reconfigure ? " reconfigure" : "") + (grow ? " grow" : "") + (policy ? " policy" : "")
            + (wipe ? " wipe" : "") + (unguardedRejoin ? " unguarded-rejoin" : "") + (maxSize ? " max-size" : "")
    }

    /// The `bulwark-sim` command that reproduces this run exactly.
    public var replayCommand: String {
        "bulwark-sim --seed \(seed) --replicas \(replicas) --clients \(clients) --requests \(requestsPerClient) "
            + "--drop \(dropPerMille) --duplicate \(duplicatePerMille) --jitter \(jitterMsMax) "
            + "--partitions \(partitions) --crashes \(crashes)\(crashPrimary ? " --crash-primary" : "")"
            + (byzantine.isEmpty ? "" : " --byzantine \(byzantineArgument)")
            + (maliciousClients == 0 ? "" : " --malicious-clients \(maliciousClients)")
            + (twins.map { " --twins \($0)" } ?? "")
            + (diskFaults ? " --disk-faults" : "")
            + (reconfigure ? " --reconfigure" : "") + (grow ? " --grow" : "") + (policy ? " --policy" : "")
            + (wipe ? " --wipe" : "") + (unguardedRejoin ? " --unguarded-rejoin" : "") + (maxSize ? " --max-size" : "")
    }

    /// `REPLICA:BEHAVIOUR[+BEHAVIOUR...]` per Byzantine replica, comma-separated.
    public var byzantineArgument: String {
        byzantine.keys.sorted().map { replica in
            "\(replica):" + byzantine[replica]!.sorted().map(\.rawValue).joined(separator: "+")
        }.joined(separator: ",")
    }

    /// Parses `byzantineArgument`'s format.
    public static func parseByzantine(_ text: String) throws -> [Int: Set<Behaviour>] {
        var result: [Int: Set<Behaviour>] = [:]
        for item in text.split(separator: ",") {
            let parts = item.split(separator: ":")
            guard parts.count == 2, let replica = Int(parts[0]) else {
                throw SimulationOptionError("expected REPLICA:BEHAVIOUR[+BEHAVIOUR], not '\(item)'")
            }
            for name in parts[1].split(separator: "+") {
                guard let behaviour = Behaviour(rawValue: String(name)) else {
                    throw SimulationOptionError("unknown behaviour '\(name)'; known: \(Behaviour.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                result[replica, default: []].insert(behaviour)
            }
        }
        return result
    }
}

/// What one run did, and every checker failure.
public struct SimulationReport: Sendable {
    public var options: SimulationOptions
    public var heights: [Height] = []
    public var maxView: View = 0
    public var viewChanges: UInt64 = 0
    /// Times an honest replica asked for a view change because the primary was too slow.
    public var slowPrimarySuspicions: UInt64 = 0
    /// Client requests replicas refused before ordering (bad signatures, floods).
    public var requestsRefused: UInt64 = 0
    /// Loop turns in which a replica's shell took more than one input at once (group commit),
    /// and requests whose clients got a final refusal from f+1 replicas and sent them again later.
    public var batchedDeliveries: UInt64 = 0
    public var refusalVerdicts = 0
    public var messagesSent: UInt64 = 0
    /// Request frames clients sent, one per replica addressed (`RequestRouting`).
    public var clientRequestsSent: UInt64 = 0
    /// Reads answered without ordering by 2f+1 agreeing validators, and fast reads that had to
    /// be ordered (SPEC.md §8.6).
    public var fastReads: UInt64 = 0
    public var fastReadsOrdered: UInt64 = 0
    public var messagesDropped: UInt64 = 0
    public var requestsCompleted: Int = 0
    /// Summed over completed requests: virtual time from first send to the accepted result.
    public var requestLatencyTotalMs: UInt64 = 0
    public var meanLatencyMs: UInt64 { requestsCompleted == 0 ? 0 : requestLatencyTotalMs / UInt64(requestsCompleted) }
    public var virtualTimeMs: UInt64 = 0
    public var primaryCrashedAtHeight: Height?
    /// State-transfer answers from Byzantine replicas that failed the receiver's checks.
    public var forgedTransfersRejected: Int = 0
    /// Where state transfer and consensus raced: blocks consensus delivered that a transfer had
    /// already stored, and transfers whose target consensus reached first.
    public var deliveredAfterTransfer: Int = 0
    public var transfersOvertaken: Int = 0
    /// Peer frames that failed decoding or the sender check.
    public var framesDropped: Int = 0
    /// Frames over `frameBytesMax`, dropped as a link would close (only a Byzantine sender may build one).
    public var oversizedFrames: Int = 0
    /// Disk faults injected, and replicas still refusing to start at the end, on damage they
    /// must not repair by themselves.
    public var diskFaultsInjected: Int = 0
    /// Of those: flipped bits in a block-log segment, a snapshot, the WAL; full disks; failing opens.
    public var corruptedSegments = 0, corruptedSnapshots = 0, corruptedWALs = 0, fullDisks = 0, failingOpens = 0
    /// Damage a replica found in its block log (by scrubbing) and cut away to repair it.
    public var damageFound: Int = 0
    public var refusedStarts: Int = 0
    /// Replicas an operator started with --rejoin after they refused on a damaged WAL.
    public var rejoinsAfterDamagedLog = 0
    /// The highest epoch a replica entered, and replicas a configuration change removed.
    public var epochsEntered: UInt64 = 0
    public var replicasRemoved = 0
    public var keysReplaced = 0
    public var replicasJoined = 0
    /// Operations checked for linearizability, per-key histories searched.
    public var linearizableOperations: Int = 0
    /// Requests the ledger denied under the client policy, and policy changes applied.
    public var permissionDenials = 0, policyChanges = 0
    /// Denied requests signed by a replica's key (a Byzantine primary's own requests).
    public var replicaRequestsDenied = 0
    /// Strangers' requests honest replicas refused to order: relayed, or inside a proposal
    /// (counted by the replicas up at the end).
    public var strangersRefused: UInt64 = 0
    /// The height the wiped replica's cluster had reached when its disk was wiped, and whether
    /// it was past its signing floor (signing normally again) at the end.
    public var wipedAtHeight: Height?
    public var rejoined = false
    /// The wiped replica's signing floor at the end (what its peers' answers proved).
    public var rejoinFloor: SigningFloor?
    /// Messages honest replicas signed, checked for two different ones in one place.
    public var signedMessagesChecked = 0
    public var failures: [String] = []

    public var passed: Bool { failures.isEmpty }

    public var summary: String {
        "seed \(options.seed): \(passed ? "ok" : "FAILED") heights=\(heights.map(String.init).joined(separator: "/")) "
            + "view=\(maxView) view-changes=\(viewChanges) slow-primary=\(slowPrimarySuspicions) requests=\(requestsCompleted) fast-reads=\(fastReads)/\(fastReads + fastReadsOrdered) latency-mean=\(meanLatencyMs)ms msgs=\(messagesSent) "
            + "dropped=\(messagesDropped) batched=\(batchedDeliveries) virtual=\(virtualTimeMs)ms"
            + (primaryCrashedAtHeight.map { " primary-crash@\($0)" } ?? "")
            + " linearizable-ops=\(linearizableOperations)"
            + (forgedTransfersRejected > 0 ? " forged-transfers-rejected=\(forgedTransfersRejected)" : "")
            + (deliveredAfterTransfer > 0 ? " delivered-after-transfer=\(deliveredAfterTransfer)" : "")
            + (transfersOvertaken > 0 ? " transfers-overtaken=\(transfersOvertaken)" : "")
            + (diskFaultsInjected > 0 ? " disk-faults=\(diskFaultsInjected)" : "")
            + (refusedStarts > 0 ? " refused-starts=\(refusedStarts)" : "")
            + (rejoinsAfterDamagedLog > 0 ? " rejoins-after-damaged-wal=\(rejoinsAfterDamagedLog)" : "")
            + (options.reconfigure || options.grow
                ? " epochs=\(epochsEntered) removed=\(replicasRemoved) keys-replaced=\(keysReplaced) joined=\(replicasJoined)" : "")
            + (options.policy ? " policy-changes=\(policyChanges) denied=\(permissionDenials)" : "")
            + (replicaRequestsDenied > 0 ? " replica-requests-denied=\(replicaRequestsDenied)" : "")
            + (strangersRefused > 0 ? " strangers-refused=\(strangersRefused)" : "")
            + (refusalVerdicts > 0 ? " refusal-verdicts=\(refusalVerdicts)" : "")
            + (wipedAtHeight.map { " wiped@\($0) rejoined=\(rejoined)" } ?? "")
    }
}

public struct SimulationOptionError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
