import ArgumentParser
import BulwarkCore
import BulwarkNode
import Foundation

struct Node: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run one replica.",
        discussion: """
            Listens on the replica and client addresses that cluster.json gives this key's \
            validator, recovers from DIR (the newest state snapshot, the block log after it, the \
            write-ahead log), and runs until \
            SIGINT or SIGTERM, when it stops gracefully. Restarting with the same DIR resumes. \
            A replica added by a configuration change starts with --join: it fetches the \
            ledger from the cluster, checking every block and every epoch change from \
            cluster.json on, until an epoch lists its key, and then runs as that validator.

            An empty DIR first asks the other replicas where the cluster stands: the replica \
            starts a new cluster only if a quorum of them has seen nothing happen, and \
            otherwise refuses, since it may have signed before its disk was lost. Start every \
            replica of a new cluster together (or with --genesis). A replica whose DIR was \
            wiped, replaced, or restored from an old copy starts with --rejoin: it learns from \
            a quorum how far the cluster got, catches up, and signs nothing at or below that \
            height (plus the watermark window) or in that view until it is past them; /status \
            says until when.
            """
    )

    @Option(help: ArgumentHelp("The cluster's configuration.", valueName: "FILE")) var config: String
    @Option(help: ArgumentHelp("This replica's private key file (mode 0600).", valueName: "FILE")) var key: String
    @Option(help: ArgumentHelp("This replica's data directory (created if missing).", valueName: "DIR")) var data: String
    @Option(help: "Log level: trace, debug, info, notice, warning, error.") var logLevel = "info"
    @Option(help: ArgumentHelp(
        "Write a snapshot of the state at most every N blocks (rounded up to a checkpoint), and only once at least one request per 200 bytes of the last snapshot ran since it, so a restart replays only the blocks after the newest; 0 for never.",
        valueName: "N")) var snapshotInterval: UInt64 = 1024
    @Option(help: ArgumentHelp("Close a client's connection after this many seconds without traffic (0: never).",
                               valueName: "SECONDS")) var clientIdleTimeout: Int64 = 120
    @Flag(help: "Join a running cluster: fetch and check its ledger until an epoch lists this key, then run.")
    var join = false
    @Flag(help: "Start a new cluster from an empty DIR without asking the other replicas first.")
    var genesis = false
    @Flag(help: "Rejoin after DIR was lost, wiped or restored from a copy: sign nothing the lost copy may have signed.")
    var rejoin = false

    func validate() throws {
        if genesis && rejoin { throw ValidationError("--genesis and --rejoin exclude each other") }
        guard (0...86_400).contains(clientIdleTimeout) else { throw ValidationError("--client-idle-timeout must be between 0 and 86400 seconds") }
    }

    func run() async throws {
        let node: ReplicaNode
        do {
            node = try await ReplicaProcess.start(configPath: config, keyPath: key, dataDirectory: data, logLevel: logLevel,
                                                  snapshotInterval: snapshotInterval, join: join,
                                                  startup: genesis ? .genesis : rejoin ? .rejoin : .probe) {
                [clientIdleTimeout] node, _, _, _ in node.clientIdleTimeoutMs = clientIdleTimeout * 1000
            }
        } catch {
            throw Self.fail(error)
        }
        await ReplicaProcess.waitForTerminationSignal()
        node.logger.info("stopping")
        await node.stop()
    }
}
