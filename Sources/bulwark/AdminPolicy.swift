import ArgumentParser
import BulwarkClient
import BulwarkCore
import Foundation

/// Client permissions (SPEC.md §19): each command is an admin's approval of one policy edit,
/// applied once `adminThreshold` admins approved it (at once with threshold 1).
extension Admin {
    /// The policy in force, read through consensus.
    static func policy(_ client: LedgerClient, _ connection: Connection) async throws -> Policy {
        let (result, _) = try await connection.execute(client, .policy)
        switch result {
        case let .policy(policy): return policy
        case let .permissionDenied(denial):
            await client.shutdown()
            throw Admin.fail(Failure("\(denial)"))
        default:
            await client.shutdown()
            throw Admin.fail(Failure("the replicas answered the policy read with another kind of result"))
        }
    }

    /// Signs `edits` with the admin key as the next policy change and submits the approval.
    static func submit(_ edits: [PolicyEdit], key path: String, _ connection: Connection) async throws {
        let (client, adminKey) = try connection.connect(key: path)
        let governance = try await connection.governance(client)
        let policy = try await Self.policy(client, connection)
        try await approve(client, connection, PolicyApprovalRequest(cluster: governance.config.clusterID, epoch: governance.epoch,
                                                                    sequence: policy.sequence, edits: edits, adminKey: adminKey))
    }

    /// Submits one policy approval and prints what became of it; non-zero exit if refused.
    static func approve(_ client: LedgerClient, _ connection: Connection, _ request: PolicyApprovalRequest) async throws {
        let (result, height) = try await connection.execute(client, .approvePolicy(request))
        await client.shutdown()
        try reportApproval(result, height: height, epoch: request.epoch)
    }

    static func permission(_ name: String) throws -> Permission {
        guard let permission = Permission(name: name) else {
            throw ValidationError("PERMISSION must be read, write, credit or admin, not '\(name)'")
        }
        return permission
    }

    static func checkName(_ name: String, _ what: String) throws {
        guard Policy.isValidName(name) else {
            throw ValidationError("\(what) '\(name)' is not a name: 1–64 letters, digits, '.', '_' or '-'")
        }
    }

    struct ShowPolicy: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "policy", abstract: "Show the client policy: mode, roles with their grants, bindings, open proposals.")
        @Option(help: ArgumentHelp("Any key the cluster serves (an admin's, or a bound client's).", valueName: "FILE"))
        var key: String?
        @Flag(help: "Print JSON.") var json = false
        @OptionGroup var connection: Connection

        func run() async throws {
            let (client, _) = try connection.connect(key: key ?? ClientKeyLocation.defaultPath)
            let governance = try await connection.governance(client)
            let policy = try await Admin.policy(client, connection)
            await client.shutdown()
            let mode = governance.config.policy
            if json {
                let data = try JSONSerialization.data(withJSONObject: Self.object(policy, mode: mode),
                                                      options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
                return print(String(decoding: data, as: UTF8.self))
            }
            print("policy \(mode) (a key with no binding may do \(mode == .open ? "everything" : "nothing")), change \(policy.sequence)")
            if policy.roles.isEmpty { print("no roles") }
            for role in policy.roles {
                print("role \(role.name): " + role.grants.map { "\($0.permission) \(Self.text($0.prefix))" }.joined(separator: ", "))
            }
            if policy.bindings.isEmpty { print("no bindings") }
            for binding in policy.bindings {
                print("client \(binding.name) \(binding.client.hex): " + binding.roles.joined(separator: ", "))
            }
            for proposal in policy.proposals {
                let approvers = proposal.approvals.map { "admin \($0.admin)" }.joined(separator: ", ")
                print("proposal \(proposal.id.hex): \(proposal.approvals.count) of \(governance.config.adminThreshold) approvals (\(approvers)); "
                      + proposal.edits.map(\.description).joined(separator: "; "))
            }
        }

        /// A prefix as it was typed: the empty prefix shows as ''.
        static func text(_ prefix: [UInt8]) -> String { prefix.isEmpty ? "''" : ClientOptions.text(prefix) }

        static func object(_ policy: Policy, mode: ClientPolicy) -> [String: Any] {
            [
                "mode": mode.description, "sequence": policy.sequence,
                "roles": policy.roles.map { role -> [String: Any] in
                    ["name": role.name, "grants": role.grants.map { ["permission": $0.permission.description, "prefix": ClientOptions.text($0.prefix)] }]
                },
                "bindings": policy.bindings.map { ["name": $0.name, "client": $0.client.hex, "roles": $0.roles] as [String: Any] },
                "proposals": policy.proposals.map { proposal -> [String: Any] in
                    ["id": proposal.id.hex, "edits": proposal.edits.map(\.description), "approvals": proposal.approvals.map { Int($0.admin) }]
                },
            ]
        }
    }

    /// What grant and revoke take: a role, a permission and a prefix, signed by an admin.
    struct GrantArguments: ParsableArguments {
        @Argument var role: String
        @Argument(help: "read, write, credit or admin.") var permission: String
        @Argument var prefix: String
        @Option(help: ArgumentHelp("An admin's private key file (admin-<i>.key).", valueName: "ADMIN.key")) var key: String
        @OptionGroup var connection: Connection

        func validate() throws {
            try Admin.checkName(role, "ROLE")
            _ = try Admin.permission(permission)
        }

        func grant() throws -> Grant { Grant(permission: try Admin.permission(permission), prefix: Array(prefix.utf8)) }
    }

    struct GrantPermission: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "grant",
            abstract: "Grant ROLE a PERMISSION (read, write, credit, admin) on keys starting with PREFIX.",
            discussion: "{client} in PREFIX stands for the caller's bound name: 'acct/{client}/' gives every client of the role its own accounts. An admin grant takes the empty prefix ''.")
        @OptionGroup var arguments: GrantArguments

        func run() async throws {
            try await Admin.submit([.grant(role: arguments.role, try arguments.grant())], key: arguments.key, arguments.connection)
        }
    }

    struct RevokePermission: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "revoke", abstract: "Take from ROLE its grant of PERMISSION on PREFIX.")
        @OptionGroup var arguments: GrantArguments

        func run() async throws {
            try await Admin.submit([.revoke(role: arguments.role, try arguments.grant())], key: arguments.key, arguments.connection)
        }
    }

    struct BindClient: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "bind", abstract: "Bind a client's public key to a unique NAME with one or more roles.")
        @Argument(help: ArgumentHelp("The client's public key (64 hex digits, as `bulwark keygen` prints it).", valueName: "CLIENT-PUBLIC-KEY"))
        var client: String
        @Argument var name: String
        @Argument(help: ArgumentHelp("The roles (1 to 16).", valueName: "ROLE")) var roles: [String]
        @Option(help: ArgumentHelp("An admin's private key file (admin-<i>.key).", valueName: "ADMIN.key")) var key: String
        @OptionGroup var connection: Connection

        func validate() throws {
            guard PublicKey(hex: client) != nil else { throw ValidationError("CLIENT-PUBLIC-KEY must be 64 hex digits") }
            try Admin.checkName(name, "NAME")
            guard (1...Policy.rolesPerBindingMax).contains(roles.count) else { throw ValidationError("give 1 to 16 roles") }
            for role in roles { try Admin.checkName(role, "ROLE") }
        }

        func run() async throws {
            let binding = Binding.sorted(name: name, client: PublicKey(hex: client)!, roles: roles)
            try await Admin.submit([.bind(binding)], key: key, connection)
        }
    }

    struct UnbindClient: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "unbind", abstract: "Remove the binding of client NAME.")
        @Argument var name: String
        @Option(help: ArgumentHelp("An admin's private key file (admin-<i>.key).", valueName: "ADMIN.key")) var key: String
        @OptionGroup var connection: Connection

        func validate() throws { try Admin.checkName(name, "NAME") }

        func run() async throws { try await Admin.submit([.unbind(name: name)], key: key, connection) }
    }
}
