import ArgumentParser
import BulwarkAdversary
import BulwarkCore
import BulwarkStorage
import BulwarkTransport
import Foundation
import Logging
import NIOPosix

/// `bulwark-byzantine client`: `ClientAttack`'s rounds against a real cluster.
struct ByzantineClient: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "client",
        abstract: "Attack a running cluster as a malicious client.",
        discussion: """
            Connects to every replica with a client key and plays attack rounds in rotation: \
            \(ClientAttack.Kind.allCases.map(\.rawValue).joined(separator: ", ")). Bad and oversized \
            requests must be refused and counted, a reused or split request id must execute at most \
            once with one operation everywhere, and floods must not starve honest clients. Prints \
            what it sent.
            """
    )

    @Option(help: ArgumentHelp("The cluster's configuration.", valueName: "FILE")) var config: String
    @Option(help: ArgumentHelp("The attacking client's private key file (from `bulwark keygen`).", valueName: "FILE"))
    var key: String
    @Option(help: "How long to attack, in seconds.") var seconds: Double = 10
    @Option(help: "Pause between attack rounds, in milliseconds.") var intervalMs: Int = 50

    func validate() throws {
        guard seconds > 0, seconds <= 3600 else { throw ValidationError("--seconds must be in (0, 3600]") }
        guard intervalMs >= 1 else { throw ValidationError("--interval-ms must be at least 1") }
    }

    func run() async throws {
        let cluster: ClusterConfig
        let privateKey: PrivateKey
        do {
            cluster = try ClusterConfig.load(from: config)
            privateKey = try KeyFile.load(from: key)
        } catch {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            throw ExitCode.failure
        }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let transport = Transport(group: group, config: cluster, role: .client(privateKey.publicKey), key: privateKey,
                                  settings: .init(frameBytesMax: cluster.parameters.frameBytesMax),
                                  logger: Logger(label: "bulwark.byzantine-client"), onFrame: { _, _ in })
        // Request ids above any this key used before: the wall clock in µs, as honest clients do.
        var attack = ClientAttack(key: privateKey, config: cluster, firstID: UInt64(Date().timeIntervalSince1970 * 1_000_000))
        var rounds: [ClientAttack.Kind: Int] = [:]
        var sent = 0
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while ContinuousClock.now < deadline {
            let (kind, sends) = attack.next()
            rounds[kind, default: 0] += 1
            for send in sends {
                transport.send(ClientFrame.request(send.request).encoded(), to: cluster.validators[send.replica].id)
            }
            sent += sends.count
            try await Task.sleep(for: .milliseconds(intervalMs))
        }
        await transport.shutdown()
        try? await group.shutdownGracefully()
        let summary = ClientAttack.Kind.allCases.map { "\($0.rawValue) \(rounds[$0, default: 0])" }.joined(separator: ", ")
        print("sent \(sent) requests in \(attack.round) rounds: \(summary)")
    }
}
