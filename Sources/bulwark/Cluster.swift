import ArgumentParser
import BulwarkCore
import BulwarkStorage
import Foundation

struct Cluster: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create and inspect cluster configurations.",
        subcommands: [Init.self]
    )

    struct Init: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a new cluster: cluster.json and one private key file per replica.",
            discussion: """
                Replica i listens on PORT+3i for replicas, PORT+3i+1 for clients and PORT+3i+2 \
                for HTTP (/metrics, /status). Key files are written with mode 0600; keep each on \
                its own replica's machine and never commit them. Admin key files (admin-<i>.key) \
                approve configuration changes (`bulwark admin`); keep them apart from the replicas.
                """
        )

        @Option(name: .long, help: "Number of replicas (at least 4; tolerates ⌊(N−1)/3⌋ Byzantine).")
        var nodes: Int = 4

        @Option(name: .long, help: "Host name or address every replica listens on.")
        var host = "127.0.0.1"

        @Option(name: .customLong("base-port"), help: ArgumentHelp("First port of the cluster.", valueName: "PORT"))
        var basePort: Int = 7000

        @Option(name: .long, help: ArgumentHelp("Directory to write into (created if missing).", valueName: "DIR"))
        var out: String

        @Option(name: .long, help: ArgumentHelp("Number of admin keys that approve configuration changes (admin-<i>.key).", valueName: "K"))
        var admins: Int = 1

        @Option(name: .customLong("admin-threshold"), help: ArgumentHelp("How many distinct admins must approve a change.", valueName: "T"))
        var adminThreshold: Int = 1

        @Option(name: .long, help: ArgumentHelp(
            "open: a client key with no binding may do everything; closed: nothing, and replicas refuse its requests (bind clients with `bulwark admin bind`).",
            valueName: "open|closed"))
        var policy: String = "open"

        @Flag(name: .long, help: "Overwrite an existing cluster.json and key files.")
        var force = false

        func validate() throws {
            guard ["open", "closed"].contains(policy) else { throw ValidationError("--policy must be open or closed, not '\(policy)'") }
        }

        func run() throws {
            let config: ClusterConfig
            do {
                config = try ClusterInit.run(nodes: nodes, host: host, basePort: basePort, directory: out, force: force,
                                             admins: admins, adminThreshold: adminThreshold,
                                             policy: policy == "closed" ? .closed : .open)
            } catch {
                throw Self.fail(error)
            }
            print("cluster \(config.clusterID.hex)")
            print("\(config.n) replicas, tolerating f = \(config.f) Byzantine, quorum \(config.quorum)")
            for v in config.validators {
                print("  replica \(v.id)  \(v.publicKey.short)…  replicas \(v.replicaAddress)  clients \(v.clientAddress)  http \(v.httpAddress)")
            }
            print("\(config.admins.count) admin\(config.admins.count == 1 ? "" : "s"), \(config.adminThreshold) of whom approve a configuration or policy change")
            print("client policy \(config.policy): a key with no binding may do \(config.policy == .open ? "everything" : "nothing")")
            print("wrote \(PathName.join(out, ClusterInit.configFileName)), \(config.n) replica key files and \(config.admins.count) admin key files")
        }
    }
}
