import ArgumentParser
import BulwarkAdversary
import BulwarkConsensus
import BulwarkCore
import BulwarkNode
import Foundation
import NIOConcurrencyHelpers

@main
struct BulwarkByzantine: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bulwark-byzantine",
        abstract: "Misbehave on purpose, for fault-injection runs: as a replica or as a client.",
        subcommands: [ByzantineReplica.self, ByzantineClient.self, StalledReaders.self],
        defaultSubcommand: ByzantineReplica.self
    )
}

struct ByzantineReplica: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replica",
        abstract: "Run a replica that misbehaves on the wire (the default subcommand).",
        discussion: """
            Runs the honest replica (same configuration, key and data directory as `bulwark node`) and \
            rewrites what it sends as the named behaviours say: equivocating, forging, withholding, \
            lying, replaying, flooding or staying silent. The honest replicas must stay safe and live \
            with at most f such replicas. crash-loop is carried out by the caller (tools/byzantine), \
            which kills and restarts this process. Behaviours:
            \(Behaviour.allCases.map(\.rawValue).joined(separator: ", ")).
            """
    )

    @Option(help: ArgumentHelp("The cluster's configuration.", valueName: "FILE")) var config: String?
    @Option(help: ArgumentHelp("This replica's private key file (mode 0600).", valueName: "FILE")) var key: String?
    @Option(help: ArgumentHelp("This replica's data directory (created if missing).", valueName: "DIR")) var data: String?
    @Option(name: .customLong("behaviour"), help: ArgumentHelp("A behaviour (repeat to combine).", valueName: "NAME"))
    var behaviours: [String] = []
    @Flag(name: .customLong("list-behaviours"), help: "Print every behaviour's name, one per line, and exit.")
    var listBehaviours = false
    @Option(help: "Log level: trace, debug, info, notice, warning, error.") var logLevel = "info"
    @Flag(help: "As for `bulwark node`: start a new cluster from an empty data directory without asking.")
    var genesis = false
    @Flag(help: "As for `bulwark node`: rejoin after a lost data directory.")
    var rejoin = false

    func validate() throws {
        if listBehaviours { return }
        if genesis && rejoin { throw ValidationError("--genesis and --rejoin exclude each other") }
        guard config != nil, key != nil, data != nil else { throw ValidationError("--config, --key and --data are required") }
        guard !behaviours.isEmpty else { throw ValidationError("name at least one --behaviour") }
        for name in behaviours where Behaviour(rawValue: name) == nil {
            throw ValidationError("unknown behaviour '\(name)'; known: \(Behaviour.allCases.map(\.rawValue).joined(separator: ", "))")
        }
    }

    func run() async throws {
        if listBehaviours {
            for behaviour in Behaviour.allCases { print(behaviour.rawValue) }
            return
        }
        guard let config, let key, let data else { throw ExitCode.failure }
        let chosen = Set(behaviours.compactMap(Behaviour.init(rawValue:)))
        let node: ReplicaNode
        do {
            node = try await ReplicaProcess.start(configPath: config, keyPath: key, dataDirectory: data, logLevel: logLevel,
                                                  startup: genesis ? .genesis : rejoin ? .rejoin : .probe) {
                node, cluster, id, key in
                // The adversary lives on the replica's serial loop, like the core.
                let adversary = NIOLockedValueBox(Adversary(behaviours: chosen, config: cluster, id: id, key: key))
                node.interceptor = ReplicaNode.Interceptor(
                    rewrite: { actions in adversary.withLockedValue { $0.rewrite(actions) } },
                    serve: { entries in adversary.withLockedValue { $0.served(entries) } },
                    delayMs: { message in adversary.withLockedValue { $0.delayMs(message) } },
                    progress: { report in adversary.withLockedValue { $0.progress(report) } })
            }
        } catch {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            throw ExitCode.failure
        }
        node.logger.warning("running as a Byzantine replica", metadata: ["behaviours": "\(chosen.sorted().map(\.rawValue))"])
        let requests = chosen.contains(.mutateIntegers) ? Task { await sendBoundaryTransferRequests(node) } : nil
        await ReplicaProcess.waitForTerminationSignal()
        requests?.cancel()
        await node.stop()
    }
}

/// State-transfer requests whose ranges sit at the boundaries (empty, inverted, beyond any
/// ledger, at the largest heights), ten a second to every peer until cancelled: the requests
/// an honest shell never sends, for the `mutate-integers` behaviour.
func sendBoundaryTransferRequests(_ node: ReplicaNode) async {
    let peers = node.config.validators.map(\.id).filter { $0 != node.id }
    var round: UInt64 = 0
    while !Task.isCancelled {
        let values = Adversary.boundaryValues(near: round)
        let from = values[Int(round % UInt64(values.count))]
        let to = values[Int((round / UInt64(values.count)) % UInt64(values.count))]
        for peer in peers { node.send(.fetchBlocks(from: from, to: to), to: peer) }
        round &+= 1
        try? await Task.sleep(for: .milliseconds(100))
    }
}
