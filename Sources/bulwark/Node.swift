import ArgumentParser
import BulwarkCore
import BulwarkNode
import Foundation
import Logging

struct Node: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run one replica.",
        discussion: """
            Listens on the replica and client addresses that cluster.json gives this key's \
            validator, recovers from DIR (the block log, the write-ahead log), and runs until \
            SIGINT or SIGTERM, when it stops gracefully. Restarting with the same DIR resumes.
            """
    )

    @Option(help: ArgumentHelp("The cluster's configuration.", valueName: "FILE")) var config: String
    @Option(help: ArgumentHelp("This replica's private key file (mode 0600).", valueName: "FILE")) var key: String
    @Option(help: ArgumentHelp("This replica's data directory (created if missing).", valueName: "DIR")) var data: String
    @Option(help: "Log level: trace, debug, info, notice, warning, error.") var logLevel = "info"

    func run() async throws {
        let cluster: ClusterConfig
        let privateKey: PrivateKey
        do {
            cluster = try ClusterConfig.load(from: config)
            privateKey = try KeyFile.load(from: key)
        } catch {
            throw Self.fail(error)
        }
        guard let id = cluster.replicaID(of: privateKey.publicKey) else {
            throw Self.fail(Failure("the key in \(key) is not a validator of the cluster in \(config)"))
        }
        var logger = Logger(label: "bulwark.node")
        logger.logLevel = Logger.Level(rawValue: logLevel) ?? .info
        let node: ReplicaNode
        do {
            node = try ReplicaNode(config: cluster, id: id, key: privateKey, dataDirectory: data, logger: logger)
            try await node.start()
        } catch {
            throw Self.fail(error)
        }
        await waitForTerminationSignal()
        logger.info("stopping")
        await node.stop()
    }

    /// Suspends until SIGINT or SIGTERM.
    func waitForTerminationSignal() async {
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
