import BulwarkCore
import BulwarkStorage
import BulwarkTestSupport
import Foundation
import Testing

/// Network namespaces the test creates itself: one per replica and one for the client, joined
/// by veth pairs to a bridge in a namespace of its own (the host's network is never touched).
/// Cutting a replica's veth is a real partition between processes. Everything is removed at
/// the end, and the processes inside are killed.
final class NamespaceNetwork {
    static let ip = "/usr/sbin/ip"
    let prefix: String
    let replicas: Int
    var namespaces: [String] = []

    /// Nil, with the reason, where the machine does not allow namespaces (not root, no iproute2).
    static func unavailableReason() -> String? {
        guard FileManager.default.isExecutableFile(atPath: ip) else { return "no \(ip) (iproute2)" }
        guard getuid() == 0 else { return "creating network namespaces needs root" }
        let probe = "bwprobe\(getpid())"
        guard (try? run([ip, "netns", "add", probe])) == 0 else { return "this machine does not allow network namespaces" }
        _ = try? run([ip, "netns", "del", probe])
        return nil
    }

    @discardableResult
    static func run(_ command: [String]) throws -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: command[0])
        process.arguments = Array(command.dropFirst())
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        return process.terminationStatus
    }

    func must(_ command: [String]) throws {
        guard try Self.run([Self.ip] + command) == 0 else { throw NodeTestError("failed: ip \(command.joined(separator: " "))") }
    }

    func namespace(_ i: Int) -> String { "\(prefix)-\(i)" }
    var clientNamespace: String { "\(prefix)-c" }
    var bridgeNamespace: String { "\(prefix)-br" }
    func address(_ i: Int) -> String { "10.77.0.\(i + 1)" }
    /// The bridge-side end of host `i`'s veth (the client is host `replicas`).
    func port(_ i: Int) -> String { "\(prefix)p\(i)" }

    init(replicas: Int) throws {
        prefix = "bw\(getpid() % 100_000)"
        self.replicas = replicas
        try must(["netns", "add", bridgeNamespace])
        namespaces.append(bridgeNamespace)
        try must(["-n", bridgeNamespace, "link", "add", "br0", "type", "bridge"])
        try must(["-n", bridgeNamespace, "link", "set", "br0", "up"])
        for host in 0...replicas {
            let ns = host == replicas ? clientNamespace : namespace(host)
            try must(["netns", "add", ns])
            namespaces.append(ns)
            try must(["link", "add", "\(prefix)h\(host)", "netns", ns, "type", "veth", "peer", "name", port(host),
                      "netns", bridgeNamespace])
            try must(["-n", ns, "link", "set", "lo", "up"])
            try must(["-n", ns, "link", "set", "\(prefix)h\(host)", "up"])
            try must(["-n", ns, "addr", "add", "\(host == replicas ? "10.77.0.100" : address(host))/24", "dev", "\(prefix)h\(host)"])
            try must(["-n", bridgeNamespace, "link", "set", port(host), "master", "br0"])
            try must(["-n", bridgeNamespace, "link", "set", port(host), "up"])
        }
    }

    /// Cuts (or restores) replica `i`'s only link.
    func setLink(_ i: Int, up: Bool) throws {
        try must(["-n", bridgeNamespace, "link", "set", port(i), up ? "up" : "down"])
    }

    func exec(in namespace: String) -> [String] { [Self.ip, "netns", "exec", namespace] }

    deinit {
        for ns in namespaces {
            _ = try? Self.run(["/bin/sh", "-c", "\(Self.ip) netns pids \(ns) | xargs -r kill -9"])
            _ = try? Self.run([Self.ip, "netns", "del", ns])
        }
    }
}

@Suite(.serialized, .enabled(if: bulwarkBinary.isBuilt, "skipped: the bulwark executable was not built"))
struct NetworkPartitionTests {
    /// A replica cut off from the others by a real partition: the other three keep committing;
    /// once the link is back, it catches up, and all four ledgers agree and audit clean.
    @Test func aPartitionedReplicaCatchesUpWhenTheLinkReturns() async throws {
        if let reason = NamespaceNetwork.unavailableReason() {
            print("skipped: \(reason)")
            return
        }
        let network = try NamespaceNetwork(replicas: 4)
        let cluster = try LocalCluster()
        // Each replica listens on its own namespace's address.
        let path = cluster.directory + "/cluster.json"
        var json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as! [String: Any]
        var validators = json["validators"] as! [[String: Any]]
        for i in validators.indices {
            validators[i]["replicaAddress"] = "\(network.address(i)):7000"
            validators[i]["clientAddress"] = "\(network.address(i)):7001"
            validators[i]["httpAddress"] = "\(network.address(i)):7002"
        }
        json["validators"] = validators
        try JSONSerialization.data(withJSONObject: json, options: [.prettyPrinted]).write(to: URL(fileURLWithPath: path))
        for i in 0..<4 { try cluster.start(i, prefix: network.exec(in: network.namespace(i))) }

        func put(_ key: String) throws -> Bool {
            let result = try bulwarkBinary.run(["put", key, "v", "--config", path, "--key", cluster.directory + "/client.key",
                                                "--timeout", "20"],
                                               prefix: network.exec(in: network.clientNamespace), timeout: .seconds(40))
            return result.status == 0
        }
        var served = false
        for attempt in 0..<10 where !served { served = try put("warm-up-\(attempt)") }
        #expect(served, "the cluster in namespaces never served")

        try network.setLink(3, up: false)
        let before = cluster.height(3)
        for i in 0..<8 { #expect(try put("cut-\(i)"), "a write failed while replica 3 was cut off") }
        #expect(cluster.height(3) == before, "replica 3 committed while cut off")
        #expect(cluster.height(1) > before)

        try network.setLink(3, up: true)
        for i in 0..<4 { #expect(try put("healed-\(i)")) }
        var caughtUp = false
        for _ in 0..<300 where !caughtUp {
            caughtUp = cluster.height(3) >= cluster.height(1)
            if !caughtUp { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(caughtUp, "replica 3 stayed at \(cluster.height(3)); replica 1 is at \(cluster.height(1))")
        cluster.stopAll()
        try cluster.expectLedgersAgreeAndAudit(replicas: Array(0..<4))
    }
}
