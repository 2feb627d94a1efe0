import ArgumentParser
import BulwarkSimulation
import Foundation

@main
struct BulwarkSim: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bulwark-sim",
        abstract: "Run deterministic whole-cluster simulations of Bulwark.",
        discussion: """
            Each seed runs a cluster of real replicas against a simulated network, disk and clock \
            with faults (loss, duplication, reordering, partitions, crashes, and with --disk-faults \
            torn writes, corrupted sectors, a full disk and failing opens), then checks \
            agreement, chain validity, exactly-once execution, durability and liveness. With \
            --seeds, each seed draws its own fault mix; a failing seed prints the command that \
            replays it exactly.
            """
    )

    @Option(help: "Run one seed.") var seed: UInt64?
    @Option(help: ArgumentHelp("Run a range of seeds, e.g. 1..200 (each with its own fault mix).", valueName: "A..B"))
    var seeds: String?
    @Option(help: "Replicas per cluster (at least 4).") var replicas = 4
    @Option(help: "Clients (with --seed).") var clients: Int?
    @Option(help: "Requests per client (with --seed).") var requests: Int?
    @Option(help: "Message loss while faults are active, per mille (with --seed).") var drop: UInt32?
    @Option(help: "Message duplication, per mille (with --seed).") var duplicate: UInt32?
    @Option(help: "Maximum extra delay per message in ms (with --seed).") var jitter: UInt64?
    @Option(help: "Number of partitions (with --seed).") var partitions: Int?
    @Option(help: "Number of replica crashes (with --seed).") var crashes: Int?
    @Flag(name: .customLong("crash-primary"), help: "Crash the primary in the middle of the load (with --seed).")
    var crashPrimary = false
    @Option(help: ArgumentHelp("Byzantine replicas, e.g. 0:equivocate or 1:silent,2:lying-checkpoints+invalid-signatures.",
                               valueName: "R:B[+B]"))
    var byzantine: String?
    @Option(name: .customLong("malicious-clients"), help: "Clients that attack the cluster (bad signatures, reused ids, floods).")
    var maliciousClients: Int?
    @Option(help: ArgumentHelp("Run a second process with this replica's key and id (Twins).", valueName: "REPLICA"))
    var twins: Int?
    @Flag(name: .customLong("disk-faults"),
          help: "Inject disk faults in every seed: torn writes at crashes, corrupted sectors (block log, snapshot, WAL), a full disk, failing opens.")
    var diskFaults = false
    @Flag(help: "Change the configuration during the faults in every seed: competing admin proposals, a replaced key, and with 5 or more replicas a removed replica that keeps sending.")
    var reconfigure = false
    @Flag(help: "Grow and shrink in every seed: three replicas outside cluster.json join with --join (some from far behind), are added, then removed (4→7→4).")
    var grow = false
    @Flag(help: "Run a closed cluster with a client policy in every seed: the admin binds the clients (each owns its account, any may pay into any) and changes the policy during the load; a checker replays the ledger against a plain model of the policy.")
    var policy = false
    @Flag(help: "Wipe one honest replica's disk in the middle of the load in every seed and restart it with --rejoin.")
    var wipe = false
    @Flag(name: .customLong("unguarded-rejoin"),
          help: "With --wipe: restart the wiped replica as a new cluster's, without a signing floor (a negative control: the checkers should fail).")
    var unguardedRejoin = false
    @Flag(name: .customLong("max-size"),
          help: "Messages at their largest in every seed: a 256 KiB frame, requests and batches of half of it, every value at valueBytesMax; an honest replica's frame over the limit fails the run.")
    var maxSize = false
    @Flag(help: "Print only failures and the final line.") var quiet = false
    @Flag(help: "Print view changes, crashes, partitions and state transfers as they happen.") var trace = false
    @Option(name: .customLong("write-ledgers"),
            help: ArgumentHelp("With --seed: write each replica's ledger to DIR/replica-<i>/blocks and the cluster to DIR/cluster.json.", valueName: "DIR"))
    var writeLedgers: String?

    func validate() throws {
        guard (seed == nil) != (seeds == nil) else { throw ValidationError("give exactly one of --seed N or --seeds A..B") }
        guard replicas >= 4 else { throw ValidationError("--replicas must be at least 4") }
        if seeds != nil, seedRange == nil { throw ValidationError("--seeds must look like 1..200, with A ≤ B") }
        if let drop, drop > 1000 { throw ValidationError("--drop is per mille: 0...1000") }
        if writeLedgers != nil, seed == nil { throw ValidationError("--write-ledgers needs --seed") }
        if let twins, twins < 0 || twins >= replicas { throw ValidationError("--twins must name a replica below \(replicas)") }
        if unguardedRejoin, !wipe { throw ValidationError("--unguarded-rejoin needs --wipe") }
        if policy, reconfigure || grow { throw ValidationError("--policy runs with one admin; it does not combine with --reconfigure or --grow") }
        if let byzantine {
            do {
                let parsed = try SimulationOptions.parseByzantine(byzantine)
                if let replica = parsed.keys.first(where: { $0 >= replicas }) {
                    throw ValidationError("--byzantine names replica \(replica), but there are \(replicas)")
                }
            } catch let error as SimulationOptionError { throw ValidationError("--byzantine: \(error)") }
        }
    }

    var seedRange: ClosedRange<UInt64>? {
        guard let seeds else { return nil }
        let parts = seeds.components(separatedBy: "..")
        guard parts.count == 2, let low = UInt64(parts[0]), let high = UInt64(parts[1]), low <= high else { return nil }
        return low...high
    }

    func options(for seed: UInt64) -> SimulationOptions {
        var options = SimulationOptions.mixed(seed: seed, replicas: replicas)
        // Attackers apply to every seed; the fault mix is the seed's own unless --seed overrides it.
        if let byzantine { options.byzantine = (try? SimulationOptions.parseByzantine(byzantine)) ?? [:] }
        if let maliciousClients { options.maliciousClients = maliciousClients }
        if let twins { options.twins = twins }
        if diskFaults { options.diskFaults = true }
        if reconfigure { options.reconfigure = true }
        if grow { options.grow = true }
        if policy { options.policy = true }
        if wipe { options.wipe = true }
        if unguardedRejoin { options.unguardedRejoin = true }
        if maxSize { options.maxSize = true }
        guard self.seed != nil else { return options }
        if let clients { options.clients = clients }
        if let requests { options.requestsPerClient = requests }
        if let drop { options.dropPerMille = drop }
        if let duplicate { options.duplicatePerMille = duplicate }
        if let jitter { options.jitterMsMax = jitter }
        if let partitions { options.partitions = partitions }
        if let crashes { options.crashes = crashes }
        if crashPrimary { options.crashPrimary = true }
        return options
    }

    func run() throws {
        let range = seed.map { $0...$0 } ?? seedRange!
        let started = ContinuousClock.now
        var failed: [SimulationOptions] = []
        var passed = 0
        for seed in range {
            let options = options(for: seed)
            if !quiet { print("run \(options)") }
            let simulation = Simulation(options: options)
            if trace { simulation.trace = { print("  \($0)") } }
            let report = simulation.run()
            if let writeLedgers {
                for replica in 0..<options.replicas {
                    try simulation.writeLedger(replica: replica, to: "\(writeLedgers)/replica-\(replica)/blocks")
                }
                try simulation.clusterConfig.jsonData().write(to: URL(fileURLWithPath: "\(writeLedgers)/cluster.json"))
                print("wrote \(options.replicas) ledgers and cluster.json to \(writeLedgers)")
            }
            if report.passed {
                passed += 1
                if !quiet { print(report.summary) }
            } else {
                failed.append(options)
                print(report.summary)
                for failure in report.failures { print("  \(failure)") }
                print("  replay: \(options.replayCommand)")
            }

        }
        let elapsed = ContinuousClock.now - started
        print("\(passed) passed, \(failed.count) failed (\(range.count) seeds, \(replicas) replicas, \(elapsed.formatted(.units(allowed: [.seconds], fractionalPart: .show(length: 1)))))")
        if !failed.isEmpty { throw ExitCode.failure }
    }
}
