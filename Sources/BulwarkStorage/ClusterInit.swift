import BulwarkCore
import Foundation

/// Creates a new cluster: one key per replica and the `cluster.json` that names them
/// (`bulwark cluster init`). Replica i listens on `basePort + 3i` for replicas,
/// `basePort + 3i + 1` for clients and `basePort + 3i + 2` for HTTP.
public enum ClusterInit {
    public static let configFileName = "cluster.json"

    public static func keyFileName(replica: ReplicaID) -> String { "replica-\(replica).key" }
    public static func adminKeyFileName(admin: Int) -> String { "admin-\(admin).key" }

    public enum Failure: Error, Equatable, CustomStringConvertible {
        case tooFewNodes(Int)
        case tooManyNodes(Int)
        case portsOutOfRange(basePort: Int, nodes: Int)
        case badHost(String)
        case badAdmins(admins: Int, threshold: Int)
        case exists(String)
        case unwritable(path: String, reason: String)
        case config(ConfigError)

        public var description: String {
            switch self {
            case let .tooFewNodes(n):
                return "a cluster needs at least 4 nodes to tolerate one Byzantine fault; --nodes \(n) is too few"
            case let .tooManyNodes(n): return "--nodes \(n) is more than the 1000 replicas supported"
            case let .portsOutOfRange(base, n):
                return "ports \(base)...\(base + 3 * n - 1) do not fit in 1...65535; choose a smaller --base-port"
            case let .badHost(host): return "'\(host)' is not a usable host name or address"
            case let .badAdmins(admins, threshold):
                return "--admins \(admins) --admin-threshold \(threshold): a cluster needs 1...\(ClusterConfig.adminsMax) admins and a threshold between 1 and the number of admins"
            case let .exists(path): return "\(path) already exists; pass --force to overwrite it"
            case let .unwritable(path, reason): return "cannot write \(path): \(reason)"
            case let .config(error): return error.description
            }
        }
    }

    /// Writes `cluster.json`, `replica-<i>.key` for `nodes` replicas and `admin-<i>.key` for
    /// `admins` admins (of whom `adminThreshold` approve a configuration change) into
    /// `directory` (created if missing) and returns the configuration.
    @discardableResult
    public static func run(nodes: Int, host: String, basePort: Int, directory: String, force: Bool,
                           parameters: ProtocolParameters = .init(), admins: Int = 1,
                           adminThreshold: Int = 1, policy: ClientPolicy = .open,
                           fileSystem: any FileSystem = PosixFileSystem()) throws(Failure) -> ClusterConfig {
        guard nodes >= 4 else { throw .tooFewNodes(nodes) }
        guard (1...ClusterConfig.adminsMax).contains(admins), (1...admins).contains(adminThreshold) else {
            throw .badAdmins(admins: admins, threshold: adminThreshold)
        }
        guard nodes <= 1000 else { throw .tooManyNodes(nodes) }
        guard basePort >= 1, basePort + 3 * nodes - 1 <= 65535 else { throw .portsOutOfRange(basePort: basePort, nodes: nodes) }
        guard Address(parsing: "\(host.contains(":") ? "[\(host)]" : host):1") != nil else { throw .badHost(host) }

        let configPath = PathName.join(directory, configFileName)
        let keyPaths = (0..<nodes).map { PathName.join(directory, keyFileName(replica: ReplicaID($0))) }
        let adminPaths = (0..<admins).map { PathName.join(directory, adminKeyFileName(admin: $0)) }
        if !force {
            for path in [configPath] + keyPaths + adminPaths where fileSystem.exists(path) { throw .exists(path) }
        }
        do { try fileSystem.createDirectory(directory) } catch {
            throw .unwritable(path: directory, reason: KeyFile.reason(error))
        }

        var keys: [PublicKey] = []
        for i in 0..<nodes {
            let key = PrivateKey.generate()
            do { try KeyFile.write(key, to: keyPaths[i], overwrite: true, fileSystem: fileSystem) } catch {
                throw .unwritable(path: keyPaths[i], reason: "\(error)")
            }
            keys.append(key.publicKey)
        }
        var adminKeys: [PublicKey] = []
        for path in adminPaths {
            let key = PrivateKey.generate()
            do { try KeyFile.write(key, to: path, overwrite: true, fileSystem: fileSystem) } catch {
                throw .unwritable(path: path, reason: "\(error)")
            }
            adminKeys.append(key.publicKey)
        }
        let config: ClusterConfig
        do {
            config = try ClusterConfig.layout(keys: keys, host: host, basePort: basePort, clusterID: .random(),
                                              parameters: parameters, admins: adminKeys, adminThreshold: adminThreshold,
                                              policy: policy)
        } catch {
            throw .config(error)
        }
        // cluster.json is public: anyone may read it.
        do {
            try writeAtomically(fileSystem, directory: directory, name: configFileName,
                                bytes: Array(config.jsonData()) + [UInt8(ascii: "\n")], mode: 0o644)
        } catch {
            throw .unwritable(path: configPath, reason: KeyFile.reason(error))
        }
        return config
    }
}
