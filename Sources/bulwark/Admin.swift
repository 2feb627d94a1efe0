import ArgumentParser
import BulwarkClient
import BulwarkCore
import BulwarkStorage
import Foundation

/// Configuration changes (SPEC.md §18): an admin proposes a complete new configuration,
/// others approve it, and the approval that reaches the threshold schedules it. Every step is
/// an ordered ledger operation signed by the admin's key, which also authenticates the
/// connection as a client.
struct Admin: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Change the cluster's configuration and client policy: propose, approve, grant, bind; show both.",
        discussion: """
            A change takes effect at the first checkpoint height a watermark window after the \
            approval that reaches the threshold; the cluster then runs the new configuration \
            (its validators, keys, addresses, parameters and admins) from view 0 of the next epoch. \
            A policy change (grant, revoke, bind, unbind) applies as soon as the threshold is reached.
            """,
        subcommands: [Propose.self, Approve.self, Show.self, Derive.self, ShowPolicy.self, GrantPermission.self,
                      RevokePermission.self, BindClient.self, UnbindClient.self])

    /// Options every admin command shares.
    struct Connection: ParsableArguments {
        @Option(help: ArgumentHelp("The cluster's genesis configuration (default: $BULWARK_CONFIG, else keys/local/cluster.json).",
                                   valueName: "FILE"))
        var cluster: String?
        @Option(help: "Seconds to wait for f+1 matching replies.") var timeout = 15

        func connect(key path: String) throws -> (LedgerClient, PrivateKey) {
            let configPath = ClusterFile.path(cluster)
            let genesis: ClusterConfig
            let key: PrivateKey
            do {
                genesis = try ClusterConfig.load(from: configPath)
                key = try KeyFile.load(from: path)
            } catch {
                throw Admin.fail(error)
            }
            return (LedgerClient(config: genesis, key: key), key)
        }

        /// Runs `operation` and returns its result, or stops the command with the error.
        func execute(_ client: LedgerClient, _ operation: LedgerOperation) async throws -> (OperationResult, Height) {
            do {
                return try await client.execute(operation, timeout: .seconds(timeout))
            } catch {
                await client.shutdown()
                throw Admin.fail(error)
            }
        }

        /// The replicated configuration, read through consensus; the client follows it to the
        /// current epoch's replicas.
        func governance(_ client: LedgerClient) async throws -> Governance {
            do {
                return try await client.follow(timeout: .seconds(timeout))
            } catch {
                await client.shutdown()
                throw Admin.fail(error)
            }
        }

        /// Submits one approval and prints what became of it; non-zero exit if refused.
        func approve(_ client: LedgerClient, _ request: ConfigApprovalRequest) async throws {
            let (result, height) = try await execute(client, .approveConfig(request))
            await client.shutdown()
            try Admin.reportApproval(result, height: height, epoch: request.epoch)
        }
    }

    /// Prints what became of an approval of a configuration or policy change made in `epoch`;
    /// throws (non-zero exit, one sentence) when it was refused or denied.
    static func reportApproval(_ result: OperationResult, height: Height, epoch: UInt64) throws {
        switch result {
        case let .configApproved(progress):
            print("proposal \(progress.id.hex)")
            if let last = progress.lastHeight {
                print("approved: \(progress.approvals) of \(progress.threshold); epoch \(epoch + 1) begins after height \(last) (approved at height \(height))")
            } else {
                print("approvals: \(progress.approvals) of \(progress.threshold) (height \(height))")
            }
        case let .policyApproved(progress):
            print("proposal \(progress.id.hex)")
            if let applied = progress.applied {
                print("applied: \(progress.approvals) of \(progress.threshold) approvals; policy change \(applied) (height \(height))")
            } else {
                print("approvals: \(progress.approvals) of \(progress.threshold) (height \(height))")
            }
        case let .configRefused(refusal): throw Admin.fail(Failure("not applied: \(refusal) (height \(height))"))
        case let .policyRefused(refusal): throw Admin.fail(Failure("not applied: \(refusal) (height \(height))"))
        case let .permissionDenied(denial): throw Admin.fail(Failure("\(denial) (recorded at height \(height))"))
        default: throw Admin.fail(Failure("the replicas answered the approval with another kind of result"))
        }
    }

    struct Propose: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Propose a complete new configuration and approve it with an admin key; prints the proposal's id.")
        @Option(help: ArgumentHelp("The new configuration, in cluster.json's format.", valueName: "NEW.json"))
        var config: String
        @Option(help: ArgumentHelp("An admin's private key file (admin-<i>.key).", valueName: "ADMIN.key"))
        var key: String
        @OptionGroup var connection: Connection

        func run() async throws {
            let next: ClusterConfig
            do { next = try ClusterConfig.load(from: config) } catch { throw Self.fail(error) }
            let (client, adminKey) = try connection.connect(key: key)
            let governance = try await connection.governance(client)
            guard next.clusterID == governance.config.clusterID else {
                await client.shutdown()
                throw Self.fail(Failure("\(config) names cluster \(next.clusterID.hex), not this cluster (\(governance.config.clusterID.hex))"))
            }
            try await connection.approve(client, ConfigApprovalRequest(epoch: governance.epoch, config: next, adminKey: adminKey))
        }
    }

    struct Approve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Approve an open proposal with an admin key.")
        @Argument(help: ArgumentHelp("The proposal's id (64 hex digits, as `propose` and `status` print it).", valueName: "ID"))
        var id: String
        @Option(help: ArgumentHelp("An admin's private key file (admin-<i>.key).", valueName: "ADMIN.key"))
        var key: String
        @OptionGroup var connection: Connection

        func run() async throws {
            guard let wanted = Digest(hex: id) else { throw Self.fail(Failure("'\(id)' is not a proposal id (64 hex digits)")) }
            let (client, adminKey) = try connection.connect(key: key)
            let governance = try await connection.governance(client)
            guard let proposal = governance.proposals.first(where: { $0.id == wanted }) else {
                // A policy proposal, then.
                let policy = try await Admin.policy(client, connection)
                if let proposal = policy.proposals.first(where: { $0.id == wanted }) {
                    return try await Admin.approve(client, connection, PolicyApprovalRequest(
                        cluster: governance.config.clusterID, epoch: governance.epoch, sequence: policy.sequence,
                        edits: proposal.edits, adminKey: adminKey))
                }
                await client.shutdown()
                let scheduled = governance.scheduled.map { " (proposal \($0.id.short)… is already approved)" } ?? ""
                throw Self.fail(Failure("no open proposal \(wanted.hex) in epoch \(governance.epoch)\(scheduled)"))
            }
            try await connection.approve(client, ConfigApprovalRequest(epoch: governance.epoch, config: proposal.config,
                                                                       adminKey: adminKey))
        }
    }

    struct Derive: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "config",
            abstract: "Write a new configuration: the one in force, read from the cluster, with replicas added, removed, re-keyed or moved.",
            discussion: """
                An address gives a replica's replica port; its client and HTTP ports are the next \
                two (as `cluster init` lays them out). The result goes to --out, ready for \
                `bulwark admin propose --config`.
                """)
        @Option(name: .customLong("add"), help: ArgumentHelp("Add replica ID with the key in FILE at HOST:PORT.", valueName: "ID:FILE:HOST:PORT"))
        var additions: [String] = []
        @Option(name: .customLong("remove"), help: ArgumentHelp("Remove replica ID.", valueName: "ID"))
        var removals: [Int] = []
        @Option(name: .customLong("rekey"), help: ArgumentHelp("Give replica ID the key in FILE.", valueName: "ID:FILE"))
        var rekeys: [String] = []
        @Option(name: .customLong("move"), help: ArgumentHelp("Move replica ID to HOST:PORT.", valueName: "ID:HOST:PORT"))
        var moves: [String] = []
        @Option(help: ArgumentHelp("Where to write the new configuration.", valueName: "NEW.json")) var out: String
        @Option(help: ArgumentHelp("A private key to connect with (default: $BULWARK_CLIENT_KEY, else ~/.bulwark/client.key).",
                                   valueName: "FILE"))
        var key: String?
        @OptionGroup var connection: Connection

        /// `host:port` and the two ports after it.
        static func addresses(_ text: Substring) throws -> (Address, Address, Address) {
            guard let replica = Address(parsing: String(text)), replica.port <= 65533 else {
                throw Derive.fail(Failure("'\(text)' is not HOST:PORT with room for the next two ports"))
            }
            return (replica, Address(host: replica.host, port: replica.port + 1), Address(host: replica.host, port: replica.port + 2))
        }

        static func id(_ text: Substring) throws -> ReplicaID {
            guard let id = ReplicaID(text) else { throw Derive.fail(Failure("'\(text)' is not a replica id")) }
            return id
        }

        static func publicKey(_ path: Substring) throws -> PublicKey {
            do { return try KeyFile.load(from: String(path)).publicKey } catch { throw Derive.fail(error) }
        }

        func run() async throws {
            let (client, _) = try connection.connect(key: key ?? ClientKeyLocation.defaultPath)
            let current = try await connection.governance(client).config
            await client.shutdown()
            var validators = current.validators
            func index(_ id: ReplicaID) throws -> Int {
                guard let i = validators.firstIndex(where: { $0.id == id }) else {
                    throw Self.fail(Failure("replica \(id) is not in the configuration in force"))
                }
                return i
            }
            for text in additions {
                let parts = text.split(separator: ":", maxSplits: 2)
                guard parts.count == 3 else { throw Self.fail(Failure("--add \(text): expected ID:FILE:HOST:PORT")) }
                let id = try Self.id(parts[0])
                guard !validators.contains(where: { $0.id == id }) else { throw Self.fail(Failure("replica \(id) is already a validator")) }
                let (r, c, h) = try Self.addresses(parts[2])
                validators.append(Validator(id: id, publicKey: try Self.publicKey(parts[1]), replicaAddress: r, clientAddress: c, httpAddress: h))
            }
            for id in removals {
                guard let replica = ReplicaID(exactly: id) else { throw Self.fail(Failure("--remove \(id): not a replica id")) }
                validators.remove(at: try index(replica))
            }
            for text in rekeys {
                let parts = text.split(separator: ":", maxSplits: 1)
                guard parts.count == 2 else { throw Self.fail(Failure("--rekey \(text): expected ID:FILE")) }
                validators[try index(try Self.id(parts[0]))].publicKey = try Self.publicKey(parts[1])
            }
            for text in moves {
                let parts = text.split(separator: ":", maxSplits: 1)
                guard parts.count == 2 else { throw Self.fail(Failure("--move \(text): expected ID:HOST:PORT")) }
                let i = try index(try Self.id(parts[0]))
                (validators[i].replicaAddress, validators[i].clientAddress, validators[i].httpAddress) = try Self.addresses(parts[1])
            }
            let next: ClusterConfig
            do {
                next = try ClusterConfig(clusterID: current.clusterID, validators: validators, parameters: current.parameters,
                                         admins: current.admins, adminThreshold: current.adminThreshold)
            } catch {
                throw Self.fail(error)
            }
            do { try next.jsonData().write(to: URL(fileURLWithPath: out)) } catch { throw Self.fail(error) }
            print("wrote \(out): \(next.n) validators (\(next.ids.map(String.init).joined(separator: ", "))), configuration \(next.hash.hex)")
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "status",
            abstract: "Show the current epoch, its configuration's hash and validators, and open proposals with their approvals.")
        @Option(help: ArgumentHelp("A private key to connect with (any client or admin key; default: $BULWARK_CLIENT_KEY, else ~/.bulwark/client.key).",
                                   valueName: "FILE"))
        var key: String?
        @Flag(help: "Print JSON.") var json = false
        @OptionGroup var connection: Connection

        func run() async throws {
            let (client, _) = try connection.connect(key: key ?? ClientKeyLocation.defaultPath)
            let governance = try await connection.governance(client)
            await client.shutdown()
            if json {
                let data = try JSONSerialization.data(withJSONObject: Self.object(governance),
                                                      options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
                print(String(decoding: data, as: UTF8.self))
                return
            }
            let config = governance.config
            print("epoch \(governance.epoch) from height \(governance.firstHeight), configuration \(config.hash.hex)")
            print("\(config.n) validators (f = \(config.f), quorum \(config.quorum)); admins: \(config.adminThreshold) of \(config.admins.count) approve a change")
            for v in config.validators {
                print("  replica \(v.id)  \(v.publicKey.short)…  replicas \(v.replicaAddress)  clients \(v.clientAddress)  http \(v.httpAddress)")
            }
            if let scheduled = governance.scheduled {
                print("approved: proposal \(scheduled.id.hex) takes effect after height \(scheduled.lastHeight) (\(scheduled.config.n) validators, configuration \(scheduled.config.hash.hex))")
            }
            if governance.proposals.isEmpty && governance.scheduled == nil { print("no open proposals") }
            for proposal in governance.proposals {
                let approvers = proposal.approvals.map { "admin \($0.admin)" }.joined(separator: ", ")
                print("proposal \(proposal.id.hex): \(proposal.approvals.count) of \(config.adminThreshold) approvals (\(approvers)); \(proposal.config.n) validators, configuration \(proposal.config.hash.hex)")
            }
        }

        static func object(_ governance: Governance) -> [String: Any] {
            func configuration(_ config: ClusterConfig) -> Any {
                (try? JSONSerialization.jsonObject(with: config.jsonData())) ?? [:]
            }
            var object: [String: Any] = [
                "epoch": governance.epoch, "firstHeight": governance.firstHeight,
                "configHash": governance.config.hash.hex, "config": configuration(governance.config),
                "epochEnds": governance.epochEnds,
                "proposals": governance.proposals.map { proposal -> [String: Any] in
                    ["id": proposal.id.hex, "configHash": proposal.config.hash.hex, "config": configuration(proposal.config),
                     "approvals": proposal.approvals.map { Int($0.admin) }]
                },
            ]
            if let scheduled = governance.scheduled {
                object["scheduled"] = ["id": scheduled.id.hex, "lastHeight": scheduled.lastHeight,
                                       "configHash": scheduled.config.hash.hex, "config": configuration(scheduled.config),
                                       "approvals": scheduled.approvals.map { Int($0.admin) }] as [String: Any]
            }
            return object
        }
    }
}
