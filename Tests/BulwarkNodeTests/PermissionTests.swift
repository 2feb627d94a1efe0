import BulwarkClient
import BulwarkCore
import BulwarkStorage
import BulwarkTestSupport
import BulwarkVerify
import Foundation
import Testing

/// The permissions demo with real processes and the real CLI (SPEC.md §19): a closed cluster
/// where alice and bob each own `acct/{client}/`; alice pays bob; bob's attempt to take from
/// alice's account is refused, and the refusal is in the audited ledger. Two admins must
/// approve each policy change: the second approves by the proposal's id.
@Suite(.serialized, .enabled(if: bulwarkBinary.isBuilt, "skipped: the bulwark executable was not built"))
struct PermissionTests {
    @Test func alicePaysBobAndBobCannotTakeFromAlice() async throws {
        let cluster = try LocalCluster(admins: 2, adminThreshold: 2, policy: .closed)
        let dir = cluster.directory
        defer { cluster.stopAll() }
        let alice = PrivateKey.generate(), bob = PrivateKey.generate(), mallory = PrivateKey.generate()
        for (name, key) in [("alice", alice), ("bob", bob), ("mallory", mallory)] { try KeyFile.write(key, to: "\(dir)/\(name).key") }
        for i in 0..<4 { try cluster.start(i) }
        func admin(_ arguments: [String], by index: Int = 0) throws -> ProductBinary.Result {
            try bulwarkBinary.run(["admin"] + arguments + ["--cluster", dir + "/cluster.json", "--key", "\(dir)/admin-\(index).key"],
                                  timeout: .seconds(60))
        }
        /// Proposes with admin 0 and approves by id with admin 1: the change applies then.
        func change(_ arguments: [String]) throws {
            let proposed = try admin(arguments)
            #expect(proposed.status == 0 && proposed.stdout.contains("approvals: 1 of 2"), "\(proposed.stdout) \(proposed.stderr)")
            let id = proposed.stdout.split(separator: "\n").first.map { String($0.dropFirst("proposal ".count)) } ?? ""
            let approved = try admin(["approve", id], by: 1)
            #expect(approved.status == 0 && approved.stdout.contains("applied: 2 of 2"), "\(approved.stdout) \(approved.stderr)")
        }
        func run(_ who: String, _ arguments: [String]) throws -> ProductBinary.Result {
            try bulwarkBinary.run(arguments + ["--config", dir + "/cluster.json", "--key", "\(dir)/\(who).key", "--timeout", "20"],
                                  timeout: .seconds(40))
        }
        // The cluster serves its admin before any policy exists.
        var serving = false
        for _ in 0..<30 where !serving { serving = try admin(["policy", "--timeout", "3"]).status == 0 }
        try #require(serving, "the closed cluster never answered its admin")

        for grant in [["owner", "write", "acct/{client}/"], ["owner", "read", "acct/{client}/"], ["owner", "credit", "acct/"]] {
            try change(["grant"] + grant)
        }
        for (name, key) in [("alice", alice), ("bob", bob)] { try change(["bind", key.publicKey.hex, name, "owner"]) }
        let shown = try admin(["policy", "--json"])
        let policy = try JSONSerialization.jsonObject(with: Data(shown.stdout.utf8)) as? [String: Any]
        #expect(policy?["mode"] as? String == "closed" && (policy?["bindings"] as? [Any])?.count == 2, "\(shown.stdout)")

        #expect(try run("alice", ["add", "acct/alice/balance", "100"]).status == 0)
        let paid = try run("alice", ["transfer", "acct/alice/balance", "acct/bob/balance", "30"])
        #expect(paid.status == 0, "\(paid.stdout) \(paid.stderr)")
        let stolen = try run("bob", ["transfer", "acct/alice/balance", "acct/bob/balance", "50"])
        #expect(stolen.status != 0)
        #expect(stolen.stderr.contains("permission denied: add on acct/alice/balance needs write on acct/alice/"), "\(stolen.stderr)")
        // Bob may not even read alice's balance; a key the policy does not know is refused before ordering.
        #expect(try run("bob", ["balance", "acct/alice/balance"]).stderr.contains("permission denied: get on acct/alice/balance needs read on acct/alice/"))
        let stranger = try run("mallory", ["put", "acct/alice/balance", "0"])
        #expect(stranger.status != 0 && stranger.stderr.contains("does not serve the client's key"), "\(stranger.stderr)")
        #expect(try run("alice", ["balance", "acct/alice/balance"]).stdout.hasPrefix("70 "))
        #expect(try run("bob", ["balance", "acct/bob/balance"]).stdout.hasPrefix("30 "))
        // Every replica counted the denials it executed and the stranger it refused.
        let metrics = String(decoding: ReplicaHTTP.get(cluster.config.validators[2].httpAddress, path: "/metrics") ?? Data(), as: UTF8.self)
        let counter = metrics.split(separator: "\n").first { $0.hasPrefix("bulwark_requests_denied_total") }
        #expect(counter.map { Int($0.split(separator: " ").last ?? "") ?? 0 } ?? 0 >= 2, "\(counter ?? "no denied counter")")
        #expect(metrics.contains("unbound_client"), "no count of refused strangers")

        cluster.stopAll()
        _ = try cluster.expectLedgersAgreeAndAudit(replicas: [0, 1, 2, 3])
        // The audit re-executed bob's attempt under the policy and found it denied.
        let verify = try ProductBinary("bulwark-verify").run(["log", cluster.dataDirectory(0), "--cluster", dir + "/cluster.json", "--json"])
        let report = try JSONSerialization.jsonObject(with: Data(verify.stdout.utf8)) as? [String: Any]
        #expect(report?["ok"] as? Bool == true && report?["policyChanges"] as? Int == 5, "\(verify.stdout)")
        let denied = (report?["denied"] as? [[String: Any]]) ?? []
        #expect(denied.contains { $0["client"] as? String == bob.publicKey.hex
            && ($0["denial"] as? String)?.contains("add on acct/alice/balance needs write on acct/alice/") == true }, "\(denied)")
    }
}
