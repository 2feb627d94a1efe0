import BulwarkCore
import BulwarkStateMachine
@testable import BulwarkStorage
import BulwarkTestSupport
import Foundation

/// The conformance vectors of SPEC.md §17, built from fixed keys and fixed operations, so
/// that generating them twice gives the same bytes. `SpecVectorTests` checks the committed
/// files against the code; `BULWARK_WRITE_VECTORS=1` rewrites them after an intended change.
enum SpecVectors {
    /// The vector ledger: every operation, every kind of failed result, a duplicate and a
    /// stale request, a null block and a view change, over limits small enough to break.
    static let ledger: LedgerFixture = {
        var parameters = ProtocolParameters()
        parameters.keyBytesMax = 16
        parameters.valueBytesMax = 64
        parameters.txnOperationsMax = 4
        parameters.rangeResultsMax = 10
        var f = LedgerFixture(clients: 3, checkpointInterval: 4, parameters: parameters)
        func k(_ text: String) -> [UInt8] { Array(text.utf8) }
        f.addBlock([.put(key: k("a"), value: k("1")), .put(key: k("b"), value: k("2")), .put(key: k("c"), value: k("hello"))])
        f.addBlock([.cas(key: k("a"), expectedVersion: 1, value: k("one")), .cas(key: k("b"), expectedVersion: 0, value: k("x")),
                    .delete(key: k("c"))])
        f.addBlock([.add(key: k("acct/alice"), delta: 100, min: 0, max: 1000),
                    .add(key: k("acct/alice"), delta: -200, min: 0, max: 1000),
                    .add(key: k("a"), delta: 1, min: 0, max: 10)])
        f.addBlock([.txn(guards: [.exists(key: k("a"))],
                         writes: [.put(key: k("d"), value: k("4")), .add(key: k("acct/alice"), delta: -30, min: 0, max: 1000),
                                  .delete(key: k("b"))]),
                    .txn(guards: [.absent(key: k("a"))], writes: [.put(key: k("e"), value: k("5"))]),
                    .txn(guards: [.versionEquals(key: k("a"), version: 2), .valueEquals(key: k("d"), value: k("4"))], writes: [])])
        f.addBlock([.txn(guards: [], writes: [.put(key: k("f"), value: k("6")), .add(key: k("acct/bob"), delta: 5, min: 0, max: 3)]),
                    .add(key: k("k"), delta: 1, min: 5, max: 4),
                    .add(key: k("acct/alice"), delta: Int64.max, min: Int64.min, max: Int64.max)])
        f.addBlock([.get(key: k("a")), .range(start: k(""), end: k("c"), limit: 10), .history(key: k("a"), limit: 5)])
        f.addBlock([])
        f.addBlock([.put(key: k("this key is too long"), value: k("v")), .put(key: k("g"), value: Array(repeating: 0x61, count: 65)),
                    .txn(guards: [.exists(key: k("a"))], writes: [.put(key: k("h"), value: []), .delete(key: k("i")),
                                                                   .delete(key: k("j")), .delete(key: k("k"))])])
        let nine = f.addBlock([.put(key: k("e"), value: k("view 1")), .delete(key: k("missing"))], view: 1)
        // A retransmission (executed again: a duplicate) and a request older than its client's last (stale).
        let older = f.entries[0].block.requests[1]
        let read = Request.signed(by: f.clients[0], cluster: f.config.clusterID, requestID: 99, operation: .get(key: k("e")))
        f.addBlock(requests: [nine.block.requests[0], older, read], view: 1)
        // The read again: its result was not kept (notKept).
        let eleven = f.addBlock([.put(key: k("a"), value: k("eleven")), .history(key: k("a"), limit: 2)], view: 2)
        f.addBlock(requests: eleven.block.requests + [read], view: 2)
        return f
    }()

    /// The policy vector ledger (SPEC.md §19): a closed cluster whose admin sets up roles and
    /// binds alice and bob; every kind of denial, refused and applied policy approvals, a
    /// change that takes rights away, and a stranger's requests a primary ordered anyway.
    static let policyAdmin = PrivateKey(seed: [0xad, 0xb0] + Array(repeating: 0x19, count: 30))!
    static let policyLedger: LedgerFixture = {
        var parameters = ProtocolParameters()
        parameters.keyBytesMax = 32
        var f = LedgerFixture(clients: 3, checkpointInterval: 4, parameters: parameters, admins: [policyAdmin.publicKey],
                              policy: .closed)
        let (alice, bob, mallory, admin) = (f.clients[0], f.clients[1], f.clients[2], policyAdmin)
        var ids: [PublicKey: UInt64] = [:]
        func by(_ key: PrivateKey, _ operation: LedgerOperation) -> Request {
            ids[key.publicKey, default: 0] += 1
            return Request.signed(by: key, cluster: f.config.clusterID, requestID: ids[key.publicKey]!, operation: operation)
        }
        func k(_ text: String) -> [UInt8] { Array(text.utf8) }
        func grant(_ role: String, _ permission: Permission, _ prefix: String) -> PolicyEdit {
            .grant(role: role, Grant(permission: permission, prefix: k(prefix)))
        }
        func approval(_ sequence: UInt64, _ edits: [PolicyEdit]) -> LedgerOperation {
            .approvePolicy(PolicyApprovalRequest(cluster: f.config.clusterID, epoch: 0, sequence: sequence, edits: edits, adminKey: admin))
        }
        func transfer(_ from: String, _ to: String, _ amount: Int64) -> LedgerOperation {
            .transfer(from: k(from), to: k(to), amount: amount)
        }
        f.addBlock(requests: [by(admin, approval(0, [
            grant("owner", .write, "acct/{client}/"), grant("owner", .read, "acct/{client}/"), grant("payer", .credit, "acct/"),
            grant("kv", .read, "k"), grant("kv", .write, "k"),
            .bind(Binding(name: "alice", client: alice.publicKey, roles: ["kv", "owner", "payer"])),
            .bind(Binding(name: "bob", client: bob.publicKey, roles: ["owner", "payer"])),
        ]))])
        f.addBlock(requests: [by(alice, .add(key: k("acct/alice/balance"), delta: 100, min: 0, max: .max)),
                              by(alice, transfer("acct/alice/balance", "acct/bob/balance", 30)),
                              by(bob, transfer("acct/alice/balance", "acct/bob/balance", 50)),
                              by(bob, .get(key: k("acct/alice/balance"))),
                              by(mallory, .put(key: k("acct/alice/balance"), value: k("0"))),
                              by(mallory, .governance)])
        f.addBlock(requests: [by(alice, .range(start: k("acct/alice/"), end: k("acct/alice0"), limit: 10)),
                              by(bob, .range(start: [], end: [], limit: 10)),
                              by(bob, .txn(guards: [.exists(key: k("acct/alice/balance"))], writes: [.put(key: k("acct/bob/x"), value: k("1"))])),
                              by(alice, .put(key: k("k1"), value: k("one"))),
                              by(bob, .put(key: k("k1"), value: k("two"))),
                              by(bob, approval(1, [.unbind(name: "alice")]))])
        f.addBlock(requests: [by(admin, approval(0, [.unbind(name: "bob")])),
                              by(admin, approval(1, [grant("kv", .admin, "k")])),
                              by(admin, approval(1, [.revoke(role: "kv", Grant(permission: .write, prefix: k("k"))), .unbind(name: "nobody")])),
                              by(admin, approval(1, [.revoke(role: "kv", Grant(permission: .write, prefix: k("k"))), .unbind(name: "bob")])),
                              by(admin, .policy)])
        f.addBlock(requests: [by(alice, .put(key: k("k2"), value: k("two"))),
                              by(bob, .get(key: k("acct/bob/balance"))),
                              by(alice, .add(key: k("acct/bob/balance"), delta: 5, min: 0, max: .max)),
                              by(alice, .add(key: k("acct/bob/balance"), delta: -5, min: 0, max: .max)),
                              // A payment tells a payer without read nothing: applied, or not.
                              by(alice, .add(key: k("acct/bob/balance"), delta: 5, min: .min, max: .max)),
                              by(alice, .add(key: k("acct/bob/balance"), delta: .max, min: .min, max: .max))])
        for _ in 0..<3 { f.addBlock(requests: []) }
        return f
    }()

    /// The epoch vector ledger (SPEC.md §18): two admins, threshold 2. Sixteen competing
    /// proposals fill the governance and a seventeenth is refused (tooManyProposals); the
    /// second admin's approval schedules the change, which removes validator 1 (leaving a gap
    /// in the ids), re-keys validator 3 and adds validator 4. Meanwhile the policy fills up to
    /// 64 roles and a 65th is refused (policyFull). Epoch 1's blocks are proposed and signed by
    /// its validators, one of them in view 1, whose primary is at position 1: id 2. Written in
    /// segments of 8 KiB, so the ledger spans several files.
    static let epochAdmins = (0..<2).map { PrivateKey(seed: [0xad, 0xe0 + UInt8($0)] + Array(repeating: 0x33, count: 30))! }
    static let epochSegmentBytes: UInt64 = 8192
    static let epochLedger: LedgerFixture = {
        var parameters = ProtocolParameters()
        parameters.keyBytesMax = 32
        parameters.watermarkWindow = 8
        var f = LedgerFixture(clients: 3, checkpointInterval: 4, parameters: parameters,
                              admins: epochAdmins.map(\.publicKey), adminThreshold: 2)
        let (first, second) = (epochAdmins[0], epochAdmins[1])
        let rekeyed = PrivateKey(seed: [0x03, 0xe1] + Array(repeating: 0x33, count: 30))!
        let added = PrivateKey(seed: [0x04, 0xe1] + Array(repeating: 0x33, count: 30))!
        f.laterKeys = [rekeyed, added]
        var ids: [PublicKey: UInt64] = [:]
        func by(_ key: PrivateKey, _ operation: LedgerOperation) -> Request {
            ids[key.publicKey, default: 0] += 1
            return Request.signed(by: key, cluster: f.config.clusterID, requestID: ids[key.publicKey]!, operation: operation)
        }
        let genesis = f.config
        var validators = genesis.validators.filter { $0.id != 1 }
        validators[2].publicKey = rekeyed.publicKey
        validators.append(Validator(id: 4, publicKey: added.publicKey, replicaAddress: Address(host: "127.0.0.1", port: 7012),
                                    clientAddress: Address(host: "127.0.0.1", port: 7013),
                                    httpAddress: Address(host: "127.0.0.1", port: 7014)))
        let next = try! ClusterConfig(clusterID: genesis.clusterID, validators: validators, parameters: genesis.parameters,
                                      admins: genesis.admins, adminThreshold: 2)
        // Sixteen other proposals, each approved once: the governance holds 16 open proposals.
        let competing = (1...17).map { i -> ClusterConfig in
            var parameters = genesis.parameters
            parameters.rangeResultsMax = 1000 + i
            return try! ClusterConfig(clusterID: genesis.clusterID, validators: genesis.validators, parameters: parameters,
                                      admins: genesis.admins, adminThreshold: 2)
        }
        f.addBlock(requests: competing.prefix(15).map { by(first, .approveConfig(ConfigApprovalRequest(epoch: 0, config: $0, adminKey: first))) }
            + [by(first, .approveConfig(ConfigApprovalRequest(epoch: 0, config: next, adminKey: first)))])
        // The seventeenth is refused; the same admin again counts once.
        f.addBlock(requests: [by(first, .approveConfig(ConfigApprovalRequest(epoch: 0, config: competing[16], adminKey: first))),
                              by(first, .approveConfig(ConfigApprovalRequest(epoch: 0, config: next, adminKey: first)))])
        // The policy: 64 roles in four changes of 16 grants, each approved by both admins.
        func role(_ i: Int) -> PolicyEdit {
            .grant(role: "r\(i < 10 ? "0" : "")\(i)", Grant(permission: .read, prefix: Array("k\(i)/".utf8)))
        }
        for change in 0..<4 {
            let edits = (0..<16).map { role(change * 16 + $0) }
            let requests = [first, second].map { admin in
                by(admin, .approvePolicy(PolicyApprovalRequest(cluster: genesis.clusterID, epoch: 0, sequence: UInt64(change),
                                                               edits: edits, adminKey: admin)))
            }
            f.addBlock(requests: requests)
        }
        f.addBlock(requests: [by(first, .approvePolicy(PolicyApprovalRequest(cluster: genesis.clusterID, epoch: 0, sequence: 4,
                                                                              edits: [role(64)], adminKey: first)))])
        // The second admin schedules the change (dropping the other proposals).
        f.addBlock(requests: [by(second, .approveConfig(ConfigApprovalRequest(epoch: 0, config: next, adminKey: second))),
                              by(f.clients[0], .put(key: Array("k1/a".utf8), value: Array("in epoch 0".utf8)))])
        while f.state.governance.epoch == 0 { f.addBlock([.put(key: Array("k2/a".utf8), value: Array("epoch 0".utf8))]) }
        f.addBlock([.put(key: Array("k3/a".utf8), value: Array("epoch 1".utf8)), .governance])
        f.addBlock([.put(key: Array("k4/a".utf8), value: Array("view 1 of epoch 1".utf8))], view: 1)
        while f.tip.height % 4 != 0 { f.addBlock([], view: 1) }
        return f
    }()

    static func hex(_ bytes: [UInt8]) -> String { Hex.encode(bytes) }

    /// Every vector file, by path under `spec/vectors/`.
    static func files() throws -> [String: [UInt8]] {
        var files = ["cases.json": json(["cases": cases()])]
        for (directory, fixture, segmentBytes) in [("ledger", ledger, BlockLog.segmentBytesDefault),
                                                   ("ledger-policy", policyLedger, BlockLog.segmentBytesDefault),
                                                   ("ledger-epochs", epochLedger, epochSegmentBytes)] {
            let fs = SimulatedFileSystem()
            let log = try BlockLog(directory: "/blocks", fileSystem: fs, segmentBytesMax: segmentBytes)
            for entry in fixture.entries {
                try log.append(entry)
                for cert in fixture.executionCertificates where cert.height == entry.block.height { try log.append(cert) }
            }
            try log.sync()
            files["\(directory)/cluster.json"] = Array(fixture.config.jsonData()) + [0x0a]
            let segments = try fs.list("/blocks").filter { $0.hasSuffix(".log") }.sorted()
            for segment in segments { files["\(directory)/blocks/\(segment)"] = fs.bytes("/blocks/\(segment)")! }
            files["\(directory)/expected.json"] = json(expected(fixture, segments: segments.map { "blocks/\($0)" }))
        }
        return files
    }

    static func json(_ object: Any) -> [UInt8] {
        Array(try! JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])) + [0x0a]
    }

    static func expected(_ ledger: LedgerFixture, segments: [String]) -> [String: Any] {
        var heights: [[String: Any]] = []
        for (i, entry) in ledger.entries.enumerated() {
            let h = entry.block.height
            let digest = ledger.entries.count > i + 1
                ? ledger.entries[i + 1].block.header.historyRoot : ledger.tip.history.root
            heights.append([
                "height": h, "blockHash": entry.block.hash.hex, "ledgerDigest": "\(h):\(digest.hex)",
                "stateRoot": ledger.stateRoots[i].hex,
                "requests": ledger.outcomes[i].map { outcome -> [String: Any] in
                    switch outcome {
                    case let .executed(result): return ["outcome": "executed", "result": hex(result.encoded())]
                    case let .duplicate(result): return ["outcome": "duplicate", "result": hex(result.encoded())]
                    case .stale: return ["outcome": "stale"]
                    }
                },
            ])
        }
        return [
            "description": "A vector ledger of SPEC.md §17: for each height, the block hash, the ledger digest of blocks 1…height, the state root after it, and what each request did (result: its encoding, SPEC.md §8.4).",
            "cluster": "cluster.json", "segments": segments, "heights": heights,
        ]
    }

    // MARK: - Cases

    static func resign(_ entry: LedgerEntry, view: View? = nil, signers: [Int] = [0, 1, 2]) -> LedgerEntry {
        var entry = entry
        let view = view ?? entry.certificate.view
        let hash = entry.block.hash
        entry.certificate = CommitCertificate(height: entry.block.height, view: view, blockHash: hash, votes: signers.map { i in
            Vote(replica: ReplicaID(i), signature: ledger.keys[i].sign(CommitCertificate.signedMessage(
                cluster: ledger.config.clusterID, view: view, height: entry.block.height, blockHash: hash, replica: ReplicaID(i))))
        })
        return entry
    }

    static func execution(height: Height, blockHash: Digest, stateRoot: Digest) -> ExecutionCertificate {
        ExecutionCertificate(height: height, blockHash: blockHash, stateRoot: stateRoot, votes: (0..<3).map { i in
            Vote(replica: ReplicaID(i), signature: ledger.keys[i].sign(ExecutionCertificate.signedMessage(
                cluster: ledger.config.clusterID, height: height, blockHash: blockHash, stateRoot: stateRoot, replica: ReplicaID(i))))
        })
    }

    static func flipped(_ signature: Signature) -> Signature {
        var bytes = signature.bytes
        bytes[7] ^= 0x01
        return Signature(bytes)!
    }

    static func cases() -> [[String: Any]] {
        var out: [[String: Any]] = []
        func add(_ name: String, _ kind: String, _ bytes: [UInt8], pass: Bool, _ rule: String, height: Height? = nil) {
            var item: [String: Any] = ["name": name, "kind": kind, "hex": hex(bytes), "expect": pass ? "pass" : "fail", "rule": rule]
            if let height { item["height"] = height }
            out.append(item)
        }
        let cluster = ledger.config.clusterID
        let request = ledger.entries[0].block.requests[0]
        add("request signed by its client", "request", request.encoded(), pass: true, "§6.3")
        var forged = request
        forged.signature = flipped(forged.signature)
        add("request with a flipped signature bit", "request", forged.encoded(), pass: false, "§6.3")
        let otherCluster = Request.signed(by: ledger.clients[0], cluster: ClusterID(raw: Bytes32(Array(repeating: 1, count: 32))!),
                                          requestID: 1, operation: request.operation)
        add("request signed for another cluster", "request", otherCluster.encoded(), pass: false, "§5, §6.3")

        let three = ledger.entries[2]
        let blockRule = "checked against the vector ledger's blocks before its height (§7.3)"
        add("block 3 as stored", "block entry", three.encoded(), pass: true, blockRule, height: 3)
        var proposer = three
        proposer.block.header.proposer = 2
        add("block 3 whose proposer is not the primary of its view", "block entry", resign(proposer).encoded(), pass: false,
            "§7.3 rule 7", height: 3)
        let nine = ledger.entries[8]
        add("block 9 (view 1) as stored", "block entry", nine.encoded(), pass: true, blockRule, height: 9)
        add("block 9 (view 1) under a commit certificate of view 0", "block entry", resign(nine, view: 0).encoded(), pass: false,
            "§10.2 certificate view ≥ block view", height: 9)
        add("block 9 (view 1) under a commit certificate of view 3", "block entry", resign(nine, view: 3).encoded(), pass: true,
            "§10.2: a later view is allowed", height: 9)
        var link = three
        link.block.header.prevBlockHash = .zero
        add("block 3 with a wrong prevBlockHash", "block entry", resign(link).encoded(), pass: false, "§7.3 rule 3", height: 3)
        var history = three
        history.block.header.historyRoot = Digest.sha256([1])
        add("block 3 with a wrong historyRoot", "block entry", resign(history).encoded(), pass: false, "§7.3 rule 4", height: 3)
        var txRoot = three
        txRoot.block.requests.removeLast()
        add("block 3 missing a request its txRoot covers", "block entry", txRoot.encoded(), pass: false, "§7.3 rule 6", height: 3)
        var time = ledger.entries[3]
        time.block.header.timestampMs = ledger.entries[2].block.header.timestampMs - 1
        add("block 4 with a timestamp before block 3's", "block entry", resign(time).encoded(), pass: false, "§7.3 rule 5", height: 4)
        var wrongHeight = three
        wrongHeight.certificate.height = 4
        add("block 3 with a certificate for height 4", "block entry", wrongHeight.encoded(), pass: false, "§10.2", height: 3)
        add("block 3 with two votes", "block entry", resign(three, signers: [0, 1]).encoded(), pass: false, "§10.1 quorum", height: 3)
        var outsider = three
        outsider.certificate.votes[2] = Vote(replica: 9, signature: outsider.certificate.votes[2].signature)
        add("block 3 with a vote from a non-validator", "block entry", outsider.encoded(), pass: false, "§10.1", height: 3)
        add("block 3 under a certificate of all four validators", "block entry", resign(three, signers: [0, 1, 2, 3]).encoded(),
            pass: true, "§10.1", height: 3)
        var fourVotes = resign(three, signers: [0, 1, 2, 3])
        fourVotes.certificate.votes[1].signature = flipped(fourVotes.certificate.votes[1].signature)
        add("block 3 with a bad vote beside a quorum of good ones", "block entry", fourVotes.encoded(), pass: false,
            "§10.1: any bad vote invalidates", height: 3)
        var badRequest = three
        badRequest.block.requests[0].signature = flipped(badRequest.block.requests[0].signature)
        badRequest.block.header.txRoot = Block.txRoot(of: badRequest.block.requests, cluster: cluster)
        add("block 3 carrying a request with a bad signature", "block entry", resign(badRequest).encoded(), pass: false,
            "§7.3 rule 8", height: 3)

        let eight = ledger.entries[7]
        let certificate = ledger.executionCertificates.first { $0.height == 8 }!
        let certRule = "valid signatures (§10.1) and the state root after the height in expected.json (§10.3, §11)"
        add("execution certificate for height 8 as stored", "execution certificate", certificate.encoded(), pass: true, certRule)
        add("execution certificate for height 8 over another state root", "execution certificate",
            execution(height: 8, blockHash: eight.block.hash, stateRoot: Digest.sha256([8])).encoded(), pass: false, "§11")
        add("execution certificate for height 6, not a checkpoint height", "execution certificate",
            execution(height: 6, blockHash: ledger.entries[5].block.hash, stateRoot: ledger.stateRoots[5]).encoded(), pass: false,
            "§10.3")
        var badCheckpoint = certificate
        badCheckpoint.votes[0].signature = flipped(badCheckpoint.votes[0].signature)
        add("execution certificate for height 8 with a bad vote", "execution certificate", badCheckpoint.encoded(), pass: false,
            "§10.1")

        let final = ledger.executionCertificates.last!
        let present = KeyProofBundle(proof: ledger.prove(Array("a".utf8)), certificate: final)
        let proofRule = "the certificate (§10.3) and the proof against its state root (§9.5)"
        add("proof that key 'a' holds 'eleven'", "key proof", Array(present.fileText.utf8), pass: true, proofRule)
        add("proof that key 'zz' is absent", "key proof",
            Array(KeyProofBundle(proof: ledger.prove(Array("zz".utf8)), certificate: final).fileText.utf8), pass: true, proofRule)
        var lie = present
        lie.proof.value = Array("twelve".utf8)
        add("proof of key 'a' with another value", "key proof", Array(lie.fileText.utf8), pass: false, "§9.5")
        var hidden = present
        hidden.proof.value = nil
        hidden.proof.version = 0
        add("proof claiming key 'a' is absent", "key proof", Array(hidden.fileText.utf8), pass: false, "§9.5")

        out += epochCases()

        var oldHeader = three.block.header.encoded()
        oldHeader[0] = 1
        add("block header of ledger format 1", "decode block header", oldHeader, pass: false, "§7.1 version")
        add("request with a trailing byte", "decode request", request.encoded() + [0], pass: false, "§4 trailing bytes")
        add("result 'value' whose present flag is 2", "decode result", [4, 2] + [UInt8](repeating: 0, count: 8), pass: false,
            "§4 bool")
        add("result with an unknown condition code", "decode result", [6, 9], pass: false, "§8.4")
        add("operation with unknown tag 13", "decode operation", [13], pass: false, "§6.1")
        var unordered = certificate
        unordered.votes.swapAt(0, 1)
        var w = CanonicalWriter()
        w.write(UInt8(1)); w.write(unordered.height); w.write(unordered.blockHash); w.write(unordered.stateRoot)
        w.write(UInt32(unordered.votes.count))
        for vote in unordered.votes { w.write(vote) }
        add("execution certificate with votes out of order", "decode execution certificate", w.bytes, pass: false, "§10.1")
        return out
    }

    /// Epoch proofs (§18.5), each checked against its own genesis configuration (`config`, in
    /// the §18.1 encoding) as the end of epoch `epoch`: a ledger whose admin replaces
    /// validator 3's key in block 1, so that epoch 0 ends at the first checkpoint a watermark
    /// window later (height 12).
    static func epochCases() -> [[String: Any]] {
        let admin = PrivateKey(seed: [0xad, 0xb0] + Array(repeating: 0, count: 30))!
        var parameters = ProtocolParameters()
        parameters.watermarkWindow = 8
        var f = LedgerFixture(clients: 1, checkpointInterval: 4, parameters: parameters, admins: [admin.publicKey])
        var next = f.config
        next.validators[3].publicKey = PrivateKey(seed: [4, 0xb1] + Array(repeating: 0, count: 30))!.publicKey
        f.addBlock([.approveConfig(ConfigApprovalRequest(epoch: 0, config: next, adminKey: admin))])
        while f.state.governance.epoch == 0 { f.addBlock([]) }
        let step = EpochProof(certificate: f.executionCertificates.last!, governance: f.proveGovernance())
        precondition(step.certificate.height == 12 && (try? step.verify(from: f.config, epoch: 0)) == next)
        var out: [[String: Any]] = []
        func add(_ name: String, _ proof: EpochProof, epoch: UInt64 = 0, pass: Bool, _ rule: String) {
            out.append(["name": name, "kind": "epoch proof", "config": hex(f.config.encoded()), "epoch": epoch,
                        "hex": hex(proof.encoded()), "expect": pass ? "pass" : "fail", "rule": rule])
        }
        add("epoch proof: epoch 0 ends at height 12, epoch 1 replaces validator 3's key", step, pass: true, "§18.5")
        var substituted = step
        substituted.governance.governance.config.validators[3].publicKey = admin.publicKey
        add("epoch proof naming a configuration the certified state does not hold", substituted, pass: false, "§18.5 rule 3")
        add("epoch proof offered as the end of epoch 1", step, epoch: 1, pass: false, "§18.5 rule 4")
        var badVote = step
        badVote.certificate.votes[0].signature = flipped(badVote.certificate.votes[0].signature)
        add("epoch proof whose certificate has a bad vote", badVote, pass: false, "§18.5 rule 1")
        var early = step
        early.governance.height = 8
        add("epoch proof whose governance is of another height than its certificate", early, pass: false, "§18.5 rule 2")
        return out
    }
}
