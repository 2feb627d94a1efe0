import BulwarkConsensus
import BulwarkCore
import BulwarkShell
import Testing

/// What a replica does with the client policy outside the ledger (SPEC.md §19.4): a closed
/// cluster orders nothing for a stranger, and a verified read goes only to a reader.
@Suite struct PolicyShellTests {
    static let admin = PrivateKey(seed: [0xad, 0x21] + Array(repeating: 0, count: 30))!
    static let stranger = PrivateKey(seed: [0x5f, 0x21] + Array(repeating: 0, count: 30))!

    @Test func aClosedClusterRefusesAStrangerBeforeOrderingAndServesWhomItBinds() throws {
        let cluster = ShellCluster(admins: [Self.admin.publicKey], policy: .closed)
        let theft = cluster.request(.put(key: Array("acct/alice/balance".utf8), value: [1]), to: [0, 1, 2, 3], by: Self.stranger)
        cluster.run(rounds: 20)
        // Every replica refused it, said so, and counted it; nothing was ordered.
        let refusals = cluster.framesTo[Self.stranger.publicKey, default: []].filter { $0 == .refused(requestID: theft.requestID, .unknownClient) }
        #expect(refusals.count == 4)
        #expect((0..<4).allSatisfy { i in cluster.notices[i, default: []].contains { if case .dropped(.unboundClient) = $0 { true } else { false } } })
        #expect((0..<4).allSatisfy { cluster.shell($0).height == 0 })

        // The admin, unbound, may submit approvals: it binds the test's client as a reader of "k".
        let sequence = cluster.shell(0).ledgerPolicy.sequence
        cluster.request(.approvePolicy(PolicyApprovalRequest(
            cluster: cluster.config.clusterID, epoch: 0, sequence: sequence,
            edits: [.grant(role: "reader", Grant(permission: .read, prefix: Array("k".utf8))),
                    .bind(Binding(name: "tester", client: cluster.client.publicKey, roles: ["reader"]))],
            adminKey: Self.admin)), to: [0, 1, 2, 3], by: Self.admin)
        cluster.run(rounds: 20)
        #expect((0..<4).allSatisfy { cluster.shell($0).ledgerPolicy.sequence == 1 })
        // Now ordered, and denied at execution: the client may read "k", not write it.
        let write = cluster.request(.put(key: Array("k1".utf8), value: [1]), to: [0, 1, 2, 3])
        cluster.run(rounds: 20)
        let answers = cluster.replies.values.flatMap { $0 }.filter { $0.requestID == write.requestID }
        #expect(answers.count == 4)
        #expect(answers.allSatisfy { (try? OperationResult(decoding: $0.result)) == .permissionDenied(
            PermissionDenial(operation: .put, key: Array("k1".utf8), permission: .write, prefix: Array("k1".utf8))) })
    }

    @Test func aVerifiedReadGoesOnlyToAClientAllowedToReadTheKey() throws {
        let cluster = ShellCluster(admins: [Self.admin.publicKey], policy: .closed)
        cluster.request(.approvePolicy(PolicyApprovalRequest(
            cluster: cluster.config.clusterID, epoch: 0, sequence: 0,
            edits: [.grant(role: "reader", Grant(permission: .read, prefix: Array("k".utf8))),
                    .bind(Binding(name: "tester", client: cluster.client.publicKey, roles: ["reader"]))],
            adminKey: Self.admin)), to: [0, 1, 2, 3], by: Self.admin)
        // Enough blocks for a certified checkpoint (interval 4).
        for _ in 0..<4 {
            cluster.request(.get(key: Array("k1".utf8)), to: [0, 1, 2, 3])
            cluster.run(rounds: 10)
        }
        func prove(_ key: String, nonce: UInt64) -> ClientFrame? {
            cluster.frames.append(.init(from: -1, to: .replica(1), bytes: ClientFrame.proveRequest(key: Array(key.utf8), nonce: nonce).encoded()))
            cluster.run()
            return cluster.clientFrames[1, default: []].last { frame in
                switch frame {
                case let .proof(n, _), let .proofUnavailable(n, _): return n == nonce
                default: return false
                }
            }
        }
        guard case .proof? = prove("k1", nonce: 1) else { Issue.record("no proof for a key the client may read"); return }
        guard case let .proofUnavailable(_, reason)? = prove("secret", nonce: 2) else {
            Issue.record("a proof for a key the client may not read"); return
        }
        #expect(reason.contains("permission denied: get on secret needs read on secret"))
    }

    /// Found in Bulwark: in a closed cluster a key refused for `get` downloaded every block
    /// (every value ever written) with a client `fetchBlocks` frame, as `bulwark node --join`
    /// does. Blocks now go only to validators of the current or a scheduled configuration, or
    /// to a caller with read on every key.
    @Test func blocksGoOnlyToValidatorsAndToWhoMayReadEverything() throws {
        let cluster = ShellCluster(admins: [Self.admin.publicKey], policy: .closed)
        let everything = PrivateKey(seed: [0xee, 0x21] + Array(repeating: 0, count: 30))!
        cluster.request(.approvePolicy(PolicyApprovalRequest(
            cluster: cluster.config.clusterID, epoch: 0, sequence: 0,
            edits: [.grant(role: "reader", Grant(permission: .read, prefix: Array("k".utf8))),
                    .grant(role: "auditor", Grant(permission: .read, prefix: [])),
                    .bind(Binding(name: "tester", client: cluster.client.publicKey, roles: ["reader"])),
                    .bind(Binding(name: "auditor", client: everything.publicKey, roles: ["auditor"]))],
            adminKey: Self.admin)), to: [0, 1, 2, 3], by: Self.admin)
        cluster.run(rounds: 20)
        #expect(cluster.shell(1).height >= 1)
        func fetch(by key: PublicKey) -> [ClientFrame] {
            cluster.framesTo[key] = []
            cluster.frames.append(.init(from: -1, to: .replica(1), bytes: ClientFrame.fetchBlocks(from: 1, to: 1).encoded(), client: key))
            cluster.run(rounds: 2)
            return cluster.framesTo[key, default: []]
        }
        for key in [Self.stranger.publicKey, cluster.client.publicKey] {
            let answers = fetch(by: key)
            #expect(answers == [.refused(requestID: 0, .unknownClient)], "\(answers)")
        }
        #expect(cluster.notices[1, default: []].contains { if case .dropped(.blocksRefused) = $0 { true } else { false } })
        guard case let .blocks(entries)? = fetch(by: everything.publicKey).first else { Issue.record("no blocks for a reader of every key"); return }
        #expect(entries.count == 1)
        // A validator's key, connected as a client (a replica joining with --join), is served.
        guard case .blocks? = fetch(by: cluster.config.validators[2].publicKey).first else { Issue.record("no blocks for a validator"); return }
    }

    @Test func anOpenClusterServesBlocksToAnyKey() throws {
        let cluster = ShellCluster()
        cluster.request(.put(key: Array("k".utf8), value: [1]), to: [0, 1, 2, 3])
        cluster.run(rounds: 20)
        cluster.frames.append(.init(from: -1, to: .replica(1), bytes: ClientFrame.fetchBlocks(from: 1, to: 1).encoded(),
                                    client: Self.stranger.publicKey))
        cluster.run(rounds: 2)
        guard case .blocks? = cluster.framesTo[Self.stranger.publicKey, default: []].first else { Issue.record("no blocks in an open cluster"); return }
    }

    /// Found in Bulwark: the refusal before ordering covered only client links; a Byzantine
    /// backup relaying strangers' requests as consensus `request` messages got them ordered and
    /// executed, each leaving a client record for ever. Every replica refuses them on that path.
    @Test func aRelayedStrangersRequestIsNotOrdered() throws {
        let cluster = ShellCluster(admins: [Self.admin.publicKey], policy: .closed)
        for i in 0..<8 {
            let stranger = PrivateKey(seed: [UInt8(i), 0x5e] + Array(repeating: 0, count: 30))!
            let request = Request.signed(by: stranger, cluster: cluster.config.clusterID, requestID: 1,
                                         operation: .put(key: Array("k".utf8), value: [1]))
            for target in [0, 1, 2] {
                cluster.frames.append(.init(from: 3, to: .replica(target),
                                            bytes: PeerFrame.consensus(epoch: 0, .request(request)).encoded()))
            }
        }
        cluster.run(rounds: 300)
        #expect((0..<3).allSatisfy { cluster.shell($0).height == 0 })
        #expect((0..<3).allSatisfy { cluster.shell($0).core.rejections[.unknownClient, default: 0] == 8 })
    }
}
