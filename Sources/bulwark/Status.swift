import ArgumentParser
import BulwarkClient
import BulwarkCore
import Foundation

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show every replica: reachable or not, view, primary, committed height, stable checkpoint, lag.",
        discussion: "The replicas are those of the configuration in force, which the command proves from cluster.json (SPEC.md §18.5) before asking them; with no replica answering, those of cluster.json.")

    @OptionGroup var clusterFile: ClusterFile
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        let path = clusterFile.path
        let genesis: ClusterConfig
        do { genesis = try ClusterConfig.load(from: path) } catch { throw Self.fail(error) }
        // Any key will do: epoch proofs are answered to every client.
        let client = LedgerClient(config: genesis, key: PrivateKey.generate())
        let (epoch, cluster) = await client.learnConfiguration(timeout: .seconds(3))
        await client.shutdown()
        let statuses = cluster.validators.map { validator -> [String: Any]? in
            guard let body = ReplicaHTTP.get(validator.httpAddress, path: "/status"),
                  let object = try? JSONSerialization.jsonObject(with: body) as? [String: Any] else { return nil }
            return object
        }
        let top = statuses.compactMap { $0?["height"] as? Int }.max() ?? 0
        if json {
            let rows: [[String: Any]] = zip(cluster.validators, statuses).map { validator, status in
                var row = status ?? [:]
                row["replica"] = Int(validator.id)
                row["reachable"] = status != nil
                if let height = status?["height"] as? Int { row["lag"] = top - height }
                return row
            }
            let data = try JSONSerialization.data(withJSONObject: rows, options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            if epoch > 0 { print("epoch \(epoch): \(cluster.n) validators, configuration \(cluster.hash.short)…") }
            for (validator, status) in zip(cluster.validators, statuses) {
                guard let status else {
                    print("replica \(validator.id)  \(validator.httpAddress)  unreachable")
                    continue
                }
                let height = status["height"] as? Int ?? 0
                let changing = status["changingView"] as? Bool == true ? " (changing view)" : ""
                let fault = (status["faulted"] as? String).map { "  FAULT: \($0)" } ?? ""
                print("replica \(validator.id)  view \(status["view"] ?? "?")\(changing)  primary \(status["primary"] ?? "?")  height \(height)  stable \(status["stableCheckpoint"] ?? "?")  lag \(top - height)\(fault)")
            }
        }
        if statuses.allSatisfy({ $0 == nil }) { throw ExitCode.failure }
    }
}
