import ArgumentParser
import BulwarkCore
import BulwarkTransport
import Foundation
import Logging
import NIOPosix

/// `bulwark-byzantine stalled-readers`: the memory attack of issue 29 item 7. Many connections,
/// each with a fresh client key, ask one replica for blocks (and proofs) and never read the
/// answers, so whatever the replica queues for them stays in its memory.
struct StalledReaders: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stalled-readers",
        abstract: "Open many client connections that ask a replica for blocks and never read.",
        discussion: "Each connection uses a fresh key, asks every --interval-ms for the first 128 blocks and a proof, and stops reading after its first answer. Prints what it sent."
    )

    @Option(help: ArgumentHelp("The cluster's configuration.", valueName: "FILE")) var config: String
    @Option(help: "The replica to attack.") var replica: Int = 0
    @Option(help: "Connections, each with its own key.") var connections: Int = 30
    @Option(help: "How long to attack, in seconds.") var seconds: Double = 15
    @Option(help: "Pause between requests on each connection, in milliseconds.") var intervalMs: Int = 100

    func validate() throws {
        guard (1...1000).contains(connections) else { throw ValidationError("--connections must be in 1...1000") }
        guard seconds > 0, seconds <= 3600 else { throw ValidationError("--seconds must be in (0, 3600]") }
        guard intervalMs >= 1 else { throw ValidationError("--interval-ms must be at least 1") }
    }

    func run() async throws {
        let cluster: ClusterConfig
        do { cluster = try ClusterConfig.load(from: config) } catch {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            throw ExitCode.failure
        }
        guard let target = cluster.validator(ReplicaID(replica))?.id else {
            FileHandle.standardError.write(Data("error: the configuration has no replica \(replica)\n".utf8))
            throw ExitCode.failure
        }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let transports = (0..<connections).map { _ -> Transport in
            let key = PrivateKey.generate()
            let transport = Transport(group: group, config: cluster, role: .client(key.publicKey), key: key,
                                      settings: .init(frameBytesMax: cluster.parameters.frameBytesMax),
                                      logger: Logger(label: "bulwark.stalled-reader"), onFrame: { _, _ in })
            // Paused before anything arrives: a connection stops reading at its first answer.
            transport.pauseReading()
            return transport
        }
        var sent = 0
        let fetch = ClientFrame.fetchBlocks(from: 1, to: 128).encoded()
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while ContinuousClock.now < deadline {
            for (i, transport) in transports.enumerated() {
                transport.send(fetch, to: target)
                transport.send(ClientFrame.proveRequest(key: Array("k\(i)".utf8), nonce: UInt64(sent)).encoded(), to: target)
                sent += 2
            }
            try await Task.sleep(for: .milliseconds(intervalMs))
        }
        for transport in transports { await transport.shutdown() }
        try? await group.shutdownGracefully()
        print("sent \(sent) requests on \(connections) connections to replica \(replica)")
    }
}
