import BulwarkCore
import BulwarkStateMachine
import BulwarkTestSupport
import Testing

/// Client permissions (SPEC.md §19): the ledger's decisions against a plain reference, over
/// generated policies and operations, and the rules of changing a policy.
@Suite struct PolicyTests {
    static let admin = PrivateKey(seed: [0xad, 0x19] + Array(repeating: 0, count: 30))!
    /// Names that are prefixes of one another, and names inside keys of others.
    static let names = ["al", "alice", "alice2", "b", "bob"]
    static let clients = names.indices.map { PrivateKey(seed: [UInt8($0 + 1), 0x19] + Array(repeating: 0, count: 30))! }
    static let stranger = PrivateKey(seed: [0x5f, 0x19] + Array(repeating: 0, count: 30))!

    /// A state driven one request per block, as a replica executes them.
    struct Ledger {
        var state: KeyValueState
        var ids: [PublicKey: UInt64] = [:]
        let cluster: ClusterID

        init(mode: ClientPolicy, threshold: Int = 1, admins: [PrivateKey] = [PolicyTests.admin]) {
            var parameters = ProtocolParameters()
            parameters.keyBytesMax = 64
            let genesis = ClusterConfig.testGenesis(cluster: ClusterID(raw: Bytes32(Array(repeating: 0x19, count: 32))!),
                                                    parameters: parameters)
            let config = try! ClusterConfig(clusterID: genesis.clusterID, validators: genesis.validators, parameters: parameters,
                                            admins: admins.map(\.publicKey), adminThreshold: threshold, policy: mode)
            state = KeyValueState(genesis: config)
            cluster = config.clusterID
        }

        mutating func run(_ operation: LedgerOperation, by key: PrivateKey) -> OperationResult {
            ids[key.publicKey, default: 0] += 1
            let request = Request.signed(by: key, cluster: cluster, requestID: ids[key.publicKey]!, operation: operation)
            let height = state.height + 1
            let header = BlockHeader(clusterID: cluster, height: height, view: 0, timestampMs: height, proposer: 0,
                                     prevBlockHash: .zero, txRoot: Block.txRoot(of: [request], cluster: cluster), historyRoot: .zero)
            guard case let .executed(result) = try! state.execute(Block(header: header, requests: [request])).first! else {
                preconditionFailure("a fresh request id executes")
            }
            return result
        }

        /// Applies `edits` with the admin's approval (threshold 1).
        mutating func edit(_ edits: [PolicyEdit], by admin: PrivateKey = PolicyTests.admin) -> OperationResult {
            let request = PolicyApprovalRequest(cluster: cluster, epoch: state.governance.epoch, sequence: state.policy.sequence,
                                                edits: edits, adminKey: admin)
            return run(.approvePolicy(request), by: admin)
        }
    }

    static let prefixes = ["", "acct/", "acct/{client}/", "acct/{client}", "{client}", "x/{client}/y/", "acct/alice/balance",
                           "acct/al", "k", "{client}/{client}/"]
    static let keys = ["acct/alice/balance", "acct/al/balance", "acct/alice2/x", "acct/bob/b", "acct/b/bob", "alice", "al/al/x",
                       "bob/bob/", "x/alice/y/z", "x/al/y/", "k1", "kk", "", "acct/", "acct/alice", "zzz"].map { Array($0.utf8) }

    static func randomEdit(_ rng: inout SeededRandom) -> PolicyEdit {
        let roles = ["owner", "reader", "payer", "all"]
        switch rng.next(upTo: 10) {
        case 0..<5:
            let grant = Grant(permission: [.read, .write, .credit][rng.next(upTo: 3)], prefix: Array(prefixes[rng.next(upTo: prefixes.count)].utf8))
            return .grant(role: roles[rng.next(upTo: roles.count)], grant)
        case 5..<8:
            let i = rng.next(upTo: names.count)
            let chosen = Set((0..<(1 + rng.next(upTo: 3))).map { _ in roles[rng.next(upTo: roles.count)] } + (rng.next(upTo: 4) == 0 ? ["ghost"] : []))
            return .bind(Binding.sorted(name: names[i], client: clients[i].publicKey, roles: Array(chosen)))
        case 8:
            let grant = Grant(permission: [.read, .write, .credit][rng.next(upTo: 3)], prefix: Array(prefixes[rng.next(upTo: prefixes.count)].utf8))
            return .revoke(role: roles[rng.next(upTo: roles.count)], grant)
        default:
            return .unbind(name: names[rng.next(upTo: names.count)])
        }
    }

    static func randomOperation(_ rng: inout SeededRandom) -> LedgerOperation {
        func key() -> [UInt8] { keys[rng.next(upTo: keys.count)] }
        let delta: Int64 = rng.next(upTo: 2) == 0 ? 5 : -5
        switch rng.next(upTo: 10) {
        case 0: return .put(key: key(), value: [1])
        case 1: return .delete(key: key())
        case 2: return .cas(key: key(), expectedVersion: 0, value: [2])
        case 3: return .add(key: key(), delta: delta, min: -1000, max: 1000)
        case 4: return .get(key: key())
        case 5: return .history(key: key(), limit: 3)
        case 6: return rng.next(upTo: 2) == 0 ? .governance : .policy
        default:
            // A transfer, as `bulwark transfer` sends it, or a guarded write.
            if rng.next(upTo: 2) == 0 {
                return .txn(guards: [], writes: [.add(key: key(), delta: -3, min: -1000, max: 1000), .add(key: key(), delta: 3, min: -1000, max: 1000)])
            }
            return .txn(guards: [.exists(key: key())], writes: [.put(key: key(), value: [3])])
        }
    }

    @Test(arguments: 1...12)
    func theLedgerDecidesAsTheReference(seed: UInt64) {
        var rng = SeededRandom(seed: seed)
        let mode: ClientPolicy = seed % 2 == 0 ? .open : .closed
        var ledger = Ledger(mode: mode)
        var reference = PolicyModel(mode: mode, admins: [Self.admin.publicKey])
        let callers = Self.clients + [Self.stranger, Self.admin]
        for round in 0..<40 {
            if round % 4 == 0 {
                let edit = Self.randomEdit(&rng)
                let result = ledger.edit([edit])
                let applies = reference.apply(edit)
                if case .policyApproved(let progress) = result, progress.applied != nil {
                    #expect(applies, "seed \(seed): the ledger applied \(edit), the reference refuses it")
                } else {
                    #expect(!applies, "seed \(seed): the ledger refused \(edit) (\(result)), the reference applies it")
                }
            }
            for _ in 0..<8 {
                let operation = Self.randomOperation(&rng)
                let caller = callers[rng.next(upTo: callers.count)]
                let result = ledger.run(operation, by: caller)
                let denied = reference.firstDenied(operation, by: caller.publicKey)
                if case let .permissionDenied(denial) = result {
                    #expect(denied?.key == denial.key && denied?.permission == denial.permission,
                            "seed \(seed): \(operation) was denied as \(denial), the reference says \(String(describing: denied))")
                } else {
                    #expect(denied == nil, "seed \(seed): \(operation) by a caller the reference denies gave \(result)")
                }
            }
        }
    }

    /// Ranges: alphabets chosen so that the first string after a prefix is in the universe.
    @Test(arguments: 1...6)
    func aRangeIsAllowedOnlyWhenOneReadGrantCoversEveryKeyInIt(seed: UInt64) {
        let letters: [UInt8] = [0x00, 0x01, 0x61, 0x62, 0xfe, 0xff]
        let prefixLetters: [UInt8] = [0x00, 0x61, 0xfe, 0xff]
        var universe: [[UInt8]] = [[]]
        var layer: [[UInt8]] = [[]]
        for _ in 0..<4 {
            layer = layer.flatMap { word in letters.map { word + [$0] } }
            universe += layer
        }
        var rng = SeededRandom(seed: seed)
        func word(_ alphabet: [UInt8], _ maxLength: Int) -> [UInt8] {
            (0..<rng.next(upTo: maxLength + 1)).map { _ in alphabet[rng.next(upTo: alphabet.count)] }
        }
        for _ in 0..<6 {
            var ledger = Ledger(mode: .closed)
            var reference = PolicyModel(mode: .closed, admins: [Self.admin.publicKey])
            var edits: [PolicyEdit] = [.bind(Binding(name: "r", client: Self.clients[0].publicKey, roles: ["reader"]))]
            for _ in 0..<(1 + rng.next(upTo: 3)) {
                let edit = PolicyEdit.grant(role: "reader", Grant(permission: .read, prefix: word(prefixLetters, 3)))
                if !edits.contains(edit) { edits.append(edit) }
            }
            guard case .policyApproved = ledger.edit(edits) else { Issue.record("the policy was refused"); return }
            for edit in edits { _ = reference.apply(edit) }
            for _ in 0..<40 {
                let start = word(letters, 3), end = rng.next(upTo: 5) == 0 ? [] : word(letters, 3)
                let result = ledger.run(.range(start: start, end: end, limit: 10), by: Self.clients[0])
                let allowed = reference.mayRange(Self.clients[0].publicKey, start, end, universe: universe)
                var denied = false
                if case .permissionDenied = result { denied = true }
                #expect(denied == !allowed, "seed \(seed): range \(start)..<\(end) under \(edits): ledger \(result), reference allows: \(allowed)")
            }
        }
    }

    /// The demo's rule: every client owns `acct/{client}/`, anyone may pay into it.
    @Test func aClientMayPayAnotherButNotTakeFromIt() {
        var ledger = Ledger(mode: .closed)
        let alice = Self.clients[1], bob = Self.clients[4]
        let result = ledger.edit([
            .grant(role: "owner", Grant(permission: .write, prefix: Array("acct/{client}/".utf8))),
            .grant(role: "owner", Grant(permission: .read, prefix: Array("acct/{client}/".utf8))),
            .grant(role: "owner", Grant(permission: .credit, prefix: Array("acct/".utf8))),
            .bind(Binding(name: "alice", client: alice.publicKey, roles: ["owner"])),
            .bind(Binding(name: "bob", client: bob.publicKey, roles: ["owner"])),
        ])
        #expect(result == .policyApproved(PolicyProgress(id: result.proposalID!, approvals: 1, threshold: 1, applied: 1)))
        func transfer(_ from: String, _ to: String, _ amount: Int64) -> LedgerOperation {
            .transfer(from: Array(from.utf8), to: Array(to.utf8), amount: amount)
        }
        #expect(ledger.run(.add(key: Array("acct/alice/balance".utf8), delta: 100, min: 0, max: .max), by: alice)
            == .balance(100, version: 2))
        #expect(ledger.run(transfer("acct/alice/balance", "acct/bob/balance", 30), by: alice) == .written(version: 3))
        let stolen = ledger.run(transfer("acct/alice/balance", "acct/bob/balance", 50), by: bob)
        let denial = PermissionDenial(operation: .add, key: Array("acct/alice/balance".utf8), permission: .write,
                                      prefix: Array("acct/alice/".utf8))
        #expect(stolen == .permissionDenied(denial))
        #expect("\(denial)" == "permission denied: add on acct/alice/balance needs write on acct/alice/")
        #expect(ledger.state.read(Array("acct/alice/balance".utf8))?.value == KeyValueState.encodeBalance(70))
        // A stranger may not even read the governance; an admin may, unbound.
        #expect(ledger.run(.governance, by: Self.stranger).isFailure)
        #expect(!ledger.run(.governance, by: Self.admin).isFailure)
        // Nor may a bound client submit approvals without an admin grant.
        let sneaky = PolicyApprovalRequest(cluster: ledger.cluster, epoch: 0, sequence: 1, edits: [.unbind(name: "alice")], adminKey: Self.admin)
        #expect(ledger.run(.approvePolicy(sneaky), by: bob) == .permissionDenied(
            PermissionDenial(operation: .approvePolicy, key: [], permission: .admin, prefix: [])))
    }

    @Test func anApprovalCountsOnceAndOnlyForItsEpochAndSequence() {
        let second = PrivateKey(seed: [0xad, 0x20] + Array(repeating: 0, count: 30))!
        var ledger = Ledger(mode: .open, threshold: 2, admins: [Self.admin, second])
        let grant = PolicyEdit.grant(role: "r", Grant(permission: .read, prefix: Array("k".utf8)))
        let first = ledger.edit([grant])
        guard case let .policyApproved(progress) = first else { Issue.record("\(first)"); return }
        #expect(progress.applied == nil && progress.approvals == 1)
        // The same admin again counts once.
        #expect(ledger.edit([grant]) == first)
        #expect(ledger.state.policy.proposals.count == 1)
        let applied = ledger.edit([grant], by: second)
        guard case let .policyApproved(done) = applied else { Issue.record("\(applied)"); return }
        #expect(done.applied == 1 && done.approvals == 2)
        #expect(ledger.state.policy.role(named: "r")?.grants == [Grant(permission: .read, prefix: Array("k".utf8))])
        // An approval signed for the sequence before is worthless now.
        let replay = PolicyApprovalRequest(cluster: ledger.cluster, epoch: 0, sequence: 0, edits: [.revoke(role: "r", Grant(permission: .read, prefix: Array("k".utf8)))], adminKey: Self.admin)
        #expect(ledger.run(.approvePolicy(replay), by: Self.admin) == .policyRefused(.wrongSequence(current: 1)))
        let otherEpoch = PolicyApprovalRequest(cluster: ledger.cluster, epoch: 1, sequence: 1, edits: [.unbind(name: "x")], adminKey: Self.admin)
        #expect(ledger.run(.approvePolicy(otherEpoch), by: Self.admin) == .policyRefused(.wrongEpoch(current: 0)))
        // Edits that cannot apply are refused whole, with the first one's reason.
        let bad = ledger.edit([.grant(role: "r", Grant(permission: .write, prefix: [])), .unbind(name: "nobody")])
        #expect(bad == .policyRefused(.badEdit(index: 1, .notBound)))
        #expect(ledger.edit([.grant(role: "r", Grant(permission: .admin, prefix: Array("k".utf8)))])
            == .policyRefused(.badEdit(index: 0, .invalidGrant)))
        #expect(ledger.edit([.grant(role: "no/slash", Grant(permission: .read, prefix: []))]) == .policyRefused(.badEdit(index: 0, .invalidName)))
        var forged = PolicyApprovalRequest(cluster: ledger.cluster, epoch: 0, sequence: 1, edits: [grant], adminKey: Self.admin)
        forged.edits = [.unbind(name: "x")]
        #expect(ledger.run(.approvePolicy(forged), by: Self.admin) == .policyRefused(.badSignature))
    }

    /// Found in Bulwark: `acct/{client}` (no delimiter after the placeholder) was accepted and
    /// matched as a plain prefix, so client `al` read and overwrote `acct/alice/secret`. Every
    /// `{client}` must now be followed by a byte no name holds.
    @Test func aShortNameNeverTakesALongerOnesKeys() {
        var ledger = Ledger(mode: .closed)
        for pattern in ["acct/{client}", "{client}", "acct/{client}x/", "acct/{client}{client}/", "acct/{client}./"] {
            let refused = ledger.edit([.grant(role: "owner", Grant(permission: .write, prefix: Array(pattern.utf8)))])
            #expect(refused == .policyRefused(.badEdit(index: 0, .invalidGrant)), "\(pattern): \(refused)")
            #expect(!PolicyModel.delimited(Array(pattern.utf8)), "\(pattern)")
        }
        for pattern in ["acct/{client}/", "acct/{client}:", "{client}/{client}/", "x{client}/"] {
            #expect(PolicyModel.delimited(Array(pattern.utf8)), "\(pattern)")
        }
        let owns = ["write", "read"].map { name in
            PolicyEdit.grant(role: "owner", Grant(permission: Permission(name: name)!, prefix: Array("acct/{client}/".utf8)))
        }
        let al = Self.clients[0], alice = Self.clients[1]
        #expect(ledger.edit(owns + [.bind(Binding.sorted(name: "al", client: al.publicKey, roles: ["owner"])),
                                    .bind(Binding.sorted(name: "alice", client: alice.publicKey, roles: ["owner"]))]).proposalID != nil)
        #expect(ledger.run(.put(key: Array("acct/alice/secret".utf8), value: [7]), by: alice) == .written(version: ledger.state.height))
        for stolen: LedgerOperation in [.get(key: Array("acct/alice/secret".utf8)), .put(key: Array("acct/alice/secret".utf8), value: [0])] {
            guard case .permissionDenied = ledger.run(stolen, by: al) else { Issue.record("al may \(stolen)"); continue }
        }
        #expect(ledger.run(.put(key: Array("acct/al/x".utf8), value: [1]), by: al) == .written(version: ledger.state.height))
    }

    /// Found in Bulwark: `add K 0` needed only credit, yet its result carried the balance and
    /// version, its failures carried values or lengths (in a transaction too), and it created
    /// absent keys and re-versioned present ones, breaking the owner's cas loop. Now credit is
    /// a delta > 0 with no bounds, and what a caller without read gets back tells nothing of
    /// the key.
    @Test func aCallerWithoutReadLearnsNothingOfTheKey() {
        var ledger = Ledger(mode: .closed)
        let owner = Self.clients[1], payer = Self.clients[3], writer = Self.clients[4]
        #expect(ledger.edit([
            .grant(role: "owner", Grant(permission: .write, prefix: Array("acct/{client}/".utf8))),
            .grant(role: "owner", Grant(permission: .read, prefix: Array("acct/{client}/".utf8))),
            .grant(role: "payer", Grant(permission: .credit, prefix: Array("acct/".utf8))),
            .grant(role: "blind", Grant(permission: .write, prefix: Array("acct/".utf8))),
            .bind(Binding.sorted(name: "alice", client: owner.publicKey, roles: ["owner"])),
            .bind(Binding.sorted(name: "b", client: payer.publicKey, roles: ["payer"])),
            .bind(Binding.sorted(name: "bob", client: writer.publicKey, roles: ["blind"])),
        ]).proposalID != nil)
        let balance = Array("acct/alice/balance".utf8), note = Array("acct/alice/note".utf8)
        #expect(ledger.run(.add(key: balance, delta: 100, min: 0, max: .max), by: owner) == .balance(100, version: ledger.state.height))
        #expect(ledger.run(.put(key: note, value: Array("secret".utf8)), by: owner) == .written(version: ledger.state.height))
        let version = ledger.state.read(balance)!.version

        // A payment tells nothing back, succeeding or not, alone or in a transaction.
        #expect(ledger.run(.add(key: balance, delta: 5, min: .min, max: .max), by: payer) == .withheld)
        #expect(ledger.run(.add(key: note, delta: 5, min: .min, max: .max), by: payer) == .conditionFailed(.add(.withheld)))
        #expect(ledger.run(.add(key: balance, delta: .max, min: .min, max: .max), by: payer) == .conditionFailed(.add(.withheld)))
        #expect(ledger.run(.txn(guards: [], writes: [.add(key: balance, delta: 1, min: .min, max: .max),
                                                     .add(key: note, delta: 1, min: .min, max: .max)]), by: payer)
            == .conditionFailed(.transactionAdd(index: 1, .withheld)))
        // Bounds read the balance; an add of 0 pays nothing and needs write.
        for probe: LedgerOperation in [.add(key: balance, delta: 5, min: 0, max: .max), .add(key: balance, delta: 5, min: .min, max: 200)] {
            guard case let .permissionDenied(denial) = ledger.run(probe, by: payer) else { Issue.record("\(probe) was not denied"); continue }
            #expect(denial.permission == .read && denial.key == balance)
        }
        let versionBefore = ledger.state.read(balance)!.version
        guard case let .permissionDenied(zero) = ledger.run(.add(key: balance, delta: 0, min: .min, max: .max), by: payer) else {
            Issue.record("add 0 by a payer was not denied"); return
        }
        #expect(zero.permission == .write)
        #expect(ledger.state.read(balance)!.version == versionBefore && versionBefore > version)
        guard case .permissionDenied = ledger.run(.add(key: Array("acct/carol/b".utf8), delta: 0, min: .min, max: .max), by: payer) else {
            Issue.record("add 0 created a key"); return
        }
        #expect(ledger.state.read(Array("acct/carol/b".utf8)) == nil)

        // Writing without read: a delete does not say whether the key was there; a cas reads.
        #expect(ledger.run(.delete(key: Array("acct/alice/none".utf8)), by: writer) == .withheld)
        guard case let .permissionDenied(cas) = ledger.run(.cas(key: note, expectedVersion: 1, value: [1]), by: writer) else {
            Issue.record("a cas without read was not denied"); return
        }
        #expect(cas.permission == .read)
        // The owner, who reads, still gets everything.
        #expect(ledger.run(.delete(key: Array("acct/alice/none".utf8)), by: owner) == .deleted(existed: false))
        #expect(ledger.run(.add(key: balance, delta: 1, min: 0, max: .max), by: owner) == .balance(106, version: ledger.state.height))
    }

    /// Found in Bulwark: every stranger's request a primary ordered left a client record in
    /// the state for ever. A stranger's denied request now leaves nothing.
    @Test func aStrangersDeniedRequestLeavesNoState() {
        var ledger = Ledger(mode: .closed)
        _ = ledger.edit([.grant(role: "kv", Grant(permission: .write, prefix: Array("k".utf8)))])
        let clientsBefore = ledger.state.clients.count
        for i in 0..<20 {
            let stranger = PrivateKey(seed: [UInt8(i), 0x77] + Array(repeating: 0, count: 30))!
            guard case .permissionDenied = ledger.run(.put(key: Array("k".utf8), value: [1]), by: stranger) else {
                Issue.record("a stranger's put was not denied"); return
            }
        }
        #expect(ledger.state.clients.count == clientsBefore)
    }

    @Test func aPolicyChangesTheStateRootOnlyOnceItIsNotEmpty() throws {
        var open = Ledger(mode: .open)
        var plain = KeyValueState(genesis: open.state.governance.config)
        // With no policy, the state is what it was before policies existed.
        #expect(open.state.stateRoot == plain.stateRoot)
        _ = open.edit([.grant(role: "r", Grant(permission: .read, prefix: []))])
        #expect(open.state.stateRoot != plain.stateRoot)
        // The policy survives a snapshot.
        let restored = try? KeyValueState(snapshot: open.state.snapshot(), cluster: open.cluster, history: MemoryKeyHistory())
        #expect(restored?.policy == open.state.policy)
        // And the encodings decode to what was encoded.
        let bytes = open.state.policy.encoded()
        #expect(try Policy(decoding: bytes) == open.state.policy)
        var closed = open.state.governance.config
        closed.policy = .closed
        #expect(try ClusterConfig(decoding: closed.encoded()) == closed)
        #expect(closed.encoded()[0] == 2 && open.state.governance.config.encoded()[0] == 1)
    }
}

extension OperationResult {
    var proposalID: Digest? {
        if case let .policyApproved(progress) = self { return progress.id }
        return nil
    }
}

extension SeededRandom {
    /// A number in 0..<bound.
    mutating func next(upTo bound: Int) -> Int { Int(next() % UInt64(bound)) }
}
