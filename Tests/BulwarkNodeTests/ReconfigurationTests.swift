import BulwarkClient
import BulwarkCore
import BulwarkStorage
import BulwarkTestSupport
import BulwarkVerify
import Foundation
import Testing

/// Configuration changes on real `bulwark node` processes (SPEC.md §18), driven by the
/// `bulwark admin` commands an operator runs, under a stream of writes.
@Suite(.serialized) struct ReconfigurationTests {
    /// Two admins, threshold 2: replica 2's key is replaced and replica 1 moves to new ports.
    /// Replica 2 stops at the boundary saying why, refuses its old key, and rejoins with the
    /// new one; replica 1 serves at its new address; no acknowledged write is lost, and every
    /// ledger passes the audit with only the genesis cluster.json, listing both epochs.
    @Test func rotateAKeyAndMoveAReplica() async throws {
        let cluster = try LocalCluster(admins: 2, adminThreshold: 2)
        let dir = cluster.directory
        for i in 0..<4 { try cluster.start(i) }
        var acknowledged: [String] = []
        func put(_ key: String) throws -> Bool {
            let result = try bulwarkBinary.run(["put", key, "v", "--config", dir + "/cluster.json", "--key", dir + "/client.key",
                                                "--timeout", "20"], timeout: .seconds(40))
            if result.status == 0 { acknowledged.append(key) }
            return result.status == 0
        }
        func admin(_ arguments: [String]) throws -> ProductBinary.Result {
            try bulwarkBinary.run(["admin"] + arguments + ["--cluster", dir + "/cluster.json"], timeout: .seconds(60))
        }
        var served = false
        for attempt in 0..<20 where !served { served = try put("warm-up-\(attempt)") }
        #expect(served, "the cluster never served")

        // The new configuration: a new key for replica 2, new ports for replica 1.
        let newKey = PrivateKey.generate()
        try KeyFile.write(newKey, to: dir + "/replica-2-new.key")
        var validators = cluster.config.validators
        validators[2].publicKey = newKey.publicKey
        let freePorts = (40_000...60_000).lazy.map { $0 }.first { LocalCluster.portsAreFree($0..<($0 + 3)) }!
        validators[1].replicaAddress = Address(host: "127.0.0.1", port: UInt16(freePorts))
        validators[1].clientAddress = Address(host: "127.0.0.1", port: UInt16(freePorts + 1))
        validators[1].httpAddress = Address(host: "127.0.0.1", port: UInt16(freePorts + 2))
        let next = try ClusterConfig(clusterID: cluster.config.clusterID, validators: validators,
                                     parameters: cluster.config.parameters, admins: cluster.config.admins,
                                     adminThreshold: 2)
        try next.jsonData().write(to: URL(fileURLWithPath: dir + "/next.json"))

        let proposed = try admin(["propose", "--config", dir + "/next.json", "--key", dir + "/admin-0.key"])
        #expect(proposed.status == 0, "\(proposed.stderr)")
        let id = proposed.stdout.split(separator: "\n").first.map { String($0.dropFirst("proposal ".count)) } ?? ""
        #expect(id == ConfigApprovalRequest(epoch: 0, config: next, adminKey: PrivateKey.generate()).proposalID.hex)
        #expect(proposed.stdout.contains("approvals: 1 of 2"))
        // One admin alone changes nothing: the status shows the open proposal.
        let status = try admin(["status", "--key", dir + "/client.key"])
        #expect(status.stdout.contains("epoch 0") && status.stdout.contains("proposal \(id): 1 of 2 approvals"), "\(status.stdout)")
        // A key that is no admin is refused, by the ledger.
        let stranger = try admin(["approve", id, "--key", dir + "/client.key"])
        #expect(stranger.status != 0 && stranger.stderr.contains("not an admin"), "\(stranger.stderr)")

        let approved = try admin(["approve", id, "--key", dir + "/admin-1.key"])
        #expect(approved.status == 0 && approved.stdout.contains("epoch 1 begins after height"), "\(approved.stdout) \(approved.stderr)")
        for i in 0..<8 { #expect(try put("during-\(i)"), "a write failed during the change") }

        // Replica 2 stops at the boundary with one sentence and status 0.
        var stopped = false
        for _ in 0..<300 where !stopped {
            stopped = cluster.processes[2]?.isRunning == false
            if !stopped { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(stopped, "replica 2 kept running with its replaced key")
        #expect(cluster.processes[2]?.terminationStatus == 0)
        let log2 = (try? String(contentsOfFile: dir + "/node-2.log", encoding: .utf8)) ?? ""
        #expect(log2.contains("replica 2's key was replaced in epoch 1"))
        cluster.processes[2] = nil
        // With its old key it refuses to start, saying so; with the new one it rejoins.
        let refused = try bulwarkBinary.run(["node", "--config", dir + "/cluster.json", "--key", dir + "/replica-2.key",
                                             "--data", cluster.dataDirectory(2)], timeout: .seconds(30))
        #expect(refused.status != 0 && refused.stderr.contains("key was replaced in epoch 1"), "\(refused.stderr)")
        try cluster.start(2, key: dir + "/replica-2-new.key")

        for i in 0..<8 { #expect(try put("after-\(i)"), "a write failed in the new epoch") }
        // Replica 1 serves at its new address: its /status answers there.
        #expect(ReplicaHTTPProbe.status(next.validator(1)!.httpAddress)?.contains("\"epoch\":1") == true)
        var caughtUp = false
        for _ in 0..<300 where !caughtUp {
            caughtUp = (0..<4).allSatisfy { cluster.height($0) >= cluster.height(0) } && cluster.height(2) > 0
            if !caughtUp { try await Task.sleep(for: .milliseconds(100)) }
        }
        cluster.stopAll()
        let (readers, _) = try cluster.expectLedgersAgreeAndAudit(replicas: Array(0..<4))
        // Nothing acknowledged is lost: every acknowledged key is in replica 0's ledger.
        let written = Set(try readers[0].entriesFlat().flatMap { $0.block.requests }.compactMap { request -> String? in
            if case let .put(key, _) = request.operation { return String(decoding: key, as: UTF8.self) }
            return nil
        })
        #expect(Set(acknowledged).isSubset(of: written))
        let epochs = try ProductBinary("bulwark-verify").run(["epochs", cluster.dataDirectory(3), "--cluster", dir + "/cluster.json"])
        #expect(epochs.status == 0 && epochs.stdout.contains("epoch 1: from height") && epochs.stdout.contains("approved by admins 0, 1"),
                "\(epochs.stdout)")
    }
}

/// `/status` of one replica, as text.
enum ReplicaHTTPProbe {
    static func status(_ address: Address) -> String? {
        ReplicaHTTP.get(address, path: "/status").map { String(decoding: $0, as: UTF8.self) }
    }
}

extension BlockLogReader {
    func entriesFlat() throws -> [LedgerEntry] {
        var entries: [LedgerEntry] = []
        try forEachEntry { entries.append($0) }
        return entries
    }
}
