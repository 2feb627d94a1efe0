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
            """
    )

    @Option(help: ArgumentHelp("The cluster's configuration.", valueName: "FILE")) var config: String
    @Option(help: ArgumentHelp("This replica's private key file (mode 0600).", valueName: "FILE")) var key: String
    @Option(help: ArgumentHelp("This replica's data directory (created if missing).", valueName: "DIR")) var data: String
    @Option(help: "Log level: trace, debug, info, notice, warning, error.") var logLevel = "info"
    @Option(help: ArgumentHelp(
        "Write a snapshot of the state at most every N blocks (rounded up to a checkpoint), and only once at least one request per 200 bytes of the last snapshot ran since it, so a restart replays only the blocks after the newest; 0 for never.",
        valueName: "N")) var snapshotInterval: UInt64 = 1024
    @Flag(help: "Join a running cluster: fetch and check its ledger until an epoch lists this key, then run.")
    var join = false

    func run() async throws {
        let node: ReplicaNode
        do {
            node = try await ReplicaProcess.start(configPath: config, keyPath: key, dataDirectory: data, logLevel: logLevel,
                                                  snapshotInterval: snapshotInterval, join: join)
        } catch {
            throw Self.fail(error)
        }
        await ReplicaProcess.waitForTerminationSignal()
        node.logger.info("stopping")
        await node.stop()
    }
}
