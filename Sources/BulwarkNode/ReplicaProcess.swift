import BulwarkCore
import BulwarkStorage
import BulwarkShell
import Dispatch
import Foundation
import Logging

/// Starting a replica process from its files, shared by `bulwark node` and `bulwark-byzantine`.
public enum ReplicaProcess {
    /// Loads the configuration and key, recovers from `dataDirectory` and starts serving;
    /// `configure` runs before the replica starts. Throws `NodeStartupError` in one sentence.
    ///
    /// With `join`, first fetches and checks the ledger from the cluster until an epoch lists
    /// this key (`ReplicaJoin`). `startup` says what an empty data directory means and
    /// whether the replica rejoins after a lost disk (SPEC.md §14.4).
    public static func start(configPath: String, keyPath: String, dataDirectory: String, logLevel: String,
                             snapshotInterval: UInt64 = 1024, join: Bool = false, startup: ShellStartup = .probe,
                             configure: (ReplicaNode, ClusterConfig, ReplicaID, PrivateKey) -> Void = { _, _, _, _ in })
        async throws -> ReplicaNode
    {
        let cluster: ClusterConfig
        let key: PrivateKey
        do {
            cluster = try ClusterConfig.load(from: configPath)
            key = try KeyFile.load(from: keyPath)
        } catch {
            throw NodeStartupError("\(error)")
        }
        // A write past the file-size limit must fail as an error the replica reports (and
        // exits on), not kill the process by signal before it can say why.
        signal(SIGXFSZ, SIG_IGN)
        var logger = Logger(label: "bulwark.node")
        logger.logLevel = Logger.Level(rawValue: logLevel) ?? .info
        if join {
            try await ReplicaJoin.run(genesis: cluster, key: key, dataDirectory: dataDirectory, logger: logger)
        }
        // The id is the one the epoch the ledger reached lists with this key.
        let node = try ReplicaNode(config: cluster, key: key, dataDirectory: dataDirectory, startup: startup, logger: logger,
                                   snapshotInterval: snapshotInterval)
        let id = node.id
        // A faulted replica does nothing else: the process ends with one sentence and a non-zero
        // status so that its supervisor restarts it, and recovery from disk brings it back.
        node.onFault = { reason in
            FileHandle.standardError.write(Data("bulwark: replica \(id) stopped: \(reason)\n".utf8))
            exit(3)
        }
        // A replica a new epoch no longer lists (removed, or its key replaced) stops for good:
        // one sentence, status 0, and a supervisor should not restart it.
        node.onRetire = { reason in
            FileHandle.standardError.write(Data("bulwark: replica \(id) stopped: \(reason)\n".utf8))
            exit(0)
        }
        configure(node, cluster, id, key)
        try await node.start()
        return node
    }

    /// Suspends until SIGINT or SIGTERM.
    public static func waitForTerminationSignal() async {
        signal(SIGINT, SIG_IGN)
        signal(SIGTERM, SIG_IGN)
        let (stream, continuation) = AsyncStream<Void>.makeStream()
        // The sources must outlive the wait, or they are cancelled and the signal never arrives.
        let sources = [SIGINT, SIGTERM].map { number -> any DispatchSourceSignal in
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { continuation.yield() }
            source.resume()
            return source
        }
        var iterator = stream.makeAsyncIterator()
        _ = await iterator.next()
        withExtendedLifetime(sources) {}
    }
}
