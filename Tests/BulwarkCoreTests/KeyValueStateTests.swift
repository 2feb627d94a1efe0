import BulwarkCore
import BulwarkStateMachine
import BulwarkTestSupport
import Testing

/// The state machine against a plain in-memory reference, over generated operation sequences.
@Suite struct KeyValueStateTests {
    /// The obvious model: a dictionary of (value, version), nothing authenticated.
    struct Reference {
        var records: [[UInt8]: (value: [UInt8], version: UInt64)] = [:]
        var histories: [[UInt8]: [KeyValueState.HistoryEntry]] = [:]
        var height: UInt64 = 0

        mutating func write(_ key: [UInt8], _ value: [UInt8]?) {
            records[key] = value.map { ($0, height) }
            histories[key, default: []].append(.init(height: height, value: value))
        }

        func balance(_ key: [UInt8]) -> Int64? {
            guard let record = records[key] else { return 0 }
            return KeyValueState.decodeBalance(record.value)
        }

        mutating func apply(_ op: LedgerOperation) -> OperationResult {
            switch op {
            case .approveConfig, .governance, .approvePolicy, .policy:
                // The model covers the key-value operations; configuration changes have tests of their own.
                preconditionFailure("the property tests generate key-value operations only")
            case let .put(k, v): write(k, v); return .written(version: height)
            case let .delete(k):
                let existed = records[k] != nil
                if existed { write(k, nil) }
                return .deleted(existed: existed)
            case let .cas(k, expected, v):
                let current = records[k]?.version ?? 0
                guard current == expected else { return .conditionFailed(.versionMismatch(actual: current, expected: expected)) }
                write(k, v)
                return .written(version: height)
            case let .add(k, delta, min, max):
                guard min <= max else { return .conditionFailed(.add(.emptyBounds(min: min, max: max))) }
                guard let current = balance(k) else { return .conditionFailed(.add(.notABalance(bytes: UInt64(records[k]!.value.count)))) }
                let (sum, overflow) = current.addingReportingOverflow(delta)
                guard !overflow else { return .conditionFailed(.add(.overflow(balance: current, delta: delta))) }
                guard sum >= min else { return .conditionFailed(.add(.belowMinimum(balance: sum, min: min))) }
                guard sum <= max else { return .conditionFailed(.add(.aboveMaximum(balance: sum, max: max))) }
                write(k, KeyValueState.encodeBalance(sum))
                return .balance(sum, version: height)
            case let .txn(guards, writes):
                for (i, g) in guards.enumerated() {
                    let holds: Bool
                    switch g {
                    case let .versionEquals(k, v): holds = (records[k]?.version ?? 0) == v
                    case let .valueEquals(k, v): holds = records[k]?.value == v
                    case let .exists(k): holds = records[k] != nil
                    case let .absent(k): holds = records[k] == nil
                    }
                    if !holds { return .conditionFailed(.guardFailed(index: UInt32(i))) }
                }
                var copy = self
                var touched: [[UInt8]] = []
                for (i, w) in writes.enumerated() {
                    switch w {
                    case let .put(k, _), let .delete(k), let .add(k, _, _, _): if !touched.contains(k) { touched.append(k) }
                    }
                    switch w {
                    case let .put(k, v): copy.records[k] = (v, height)
                    case let .delete(k): copy.records[k] = nil
                    case let .add(k, delta, min, max):
                        let index = UInt32(i)
                        guard min <= max else { return .conditionFailed(.transactionAdd(index: index, .emptyBounds(min: min, max: max))) }
                        guard let current = copy.balance(k) else {
                            return .conditionFailed(.transactionAdd(index: index, .notABalance(bytes: UInt64(copy.records[k]!.value.count))))
                        }
                        let (sum, overflow) = current.addingReportingOverflow(delta)
                        guard !overflow else { return .conditionFailed(.transactionAdd(index: index, .overflow(balance: current, delta: delta))) }
                        guard sum >= min else { return .conditionFailed(.transactionAdd(index: index, .belowMinimum(balance: sum, min: min))) }
                        guard sum <= max else { return .conditionFailed(.transactionAdd(index: index, .aboveMaximum(balance: sum, max: max))) }
                        copy.records[k] = (KeyValueState.encodeBalance(sum), height)
                    }
                }
                // A transaction writes each key it touched once, with its final value.
                for k in touched where copy.records[k] != nil || records[k] != nil { write(k, copy.records[k]?.value) }
                return .written(version: height)
            case let .get(k): return .value(records[k]?.value, version: records[k]?.version ?? 0)
            case let .range(start, end, limit):
                let keys = records.keys.filter { !$0.lexicographicallyPrecedes(start) && (end.isEmpty || $0.lexicographicallyPrecedes(end)) }
                    .sorted { $0.lexicographicallyPrecedes($1) }.prefix(Int(limit))
                return .entries(keys.map { .init(key: $0, value: records[$0]!.value, version: records[$0]!.version) })
            case let .history(k, limit): return .history(Array((histories[k] ?? []).suffix(Int(limit))))
            }
        }
    }

    static let keys: [[UInt8]] = (0..<12).map { [UInt8($0)] }

    static func operation(_ rng: inout SeededRandom) -> LedgerOperation {
        func key() -> [UInt8] { keys[Int.random(in: 0..<keys.count, using: &rng)] }
        func small() -> Int64 { Int64.random(in: -50...50, using: &rng) }
        switch Int.random(in: 0..<11, using: &rng) {
        case 0, 1: return .put(key: key(), value: rng.bytes(upTo: 9))
        case 2: return .delete(key: key())
        case 3: return .cas(key: key(), expectedVersion: UInt64.random(in: 0...6, using: &rng), value: rng.bytes(upTo: 4))
        case 4, 5: return .add(key: key(), delta: small(), min: -20, max: 100)
        case 6:
            let guards: [LedgerOperation.Guard] = [.exists(key: key()), .absent(key: key()),
                                                   .versionEquals(key: key(), version: UInt64.random(in: 0...6, using: &rng))]
            return .txn(guards: Array(guards.prefix(Int.random(in: 0...2, using: &rng))),
                        writes: [.add(key: key(), delta: small(), min: 0, max: 100), .put(key: key(), value: [7]),
                                 .add(key: key(), delta: small(), min: 0, max: 100)])
        case 7: return .get(key: key())
        case 8: return .range(start: key(), end: Bool.random(using: &rng) ? [] : key(), limit: UInt32.random(in: 0...5, using: &rng))
        case 9: return .history(key: key(), limit: UInt32.random(in: 0...4, using: &rng))
        default: return .delete(key: key())
        }
    }

    /// Found in Bulwark: every client's last result, reads included, was kept in the replicated
    /// deduplication table; 80 free client keys doing large range reads grew a snapshot from
    /// 1.3 MB to 338 MB. Now a read's result is answered and not kept: the state after many
    /// large reads is as small as before them, and a retransmitted read is told to ask again.
    @Test func readResultsAreNotKeptInTheState() throws {
        var state = KeyValueState(genesis: .testGenesis(cluster: testCluster, parameters: ProtocolParameters()))
        let cluster = ClusterID(raw: .zero)
        func block(_ requests: [Request]) -> Block {
            let header = BlockHeader(clusterID: cluster, height: state.height + 1, view: 0, timestampMs: 0, proposer: 0,
                                     prevBlockHash: .zero, txRoot: .zero, historyRoot: .zero)
            return Block(header: header, requests: requests)
        }
        let writer = TestKeys.key(61)
        let value = [UInt8](repeating: 0x5A, count: 60_000)
        _ = try state.execute(block((0..<60).map { i in
            Request.signed(by: writer, cluster: cluster, requestID: UInt64(i + 1),
                           operation: .put(key: Array("big/\(i)".utf8), value: value))
        }))
        let before = state.snapshot().count
        let readers = (0..<80).map { TestKeys.key(100 + $0) }
        let range = LedgerOperation.range(start: Array("big/".utf8), end: Array("big0".utf8), limit: 1000)
        let outcomes = try state.execute(block(readers.map { Request.signed(by: $0, cluster: cluster, requestID: 1, operation: range) }))
        for outcome in outcomes {
            guard case let .executed(.entries(entries)) = outcome else { Issue.record("\(outcome)"); continue }
            #expect(entries.count > 60 / 2, "the reader got its (large) answer")
        }
        let after = state.snapshot().count
        // Each reader adds a key, a request id, a height and a one-byte result: under 100 bytes.
        #expect(after - before < 80 * 100, "snapshot grew from \(before) to \(after) bytes")
        #expect(state.clients[readers[0].publicKey]?.result == .notKept)
        // The same read again (a retransmission) executes nothing and says so.
        let again = try state.execute(block([Request.signed(by: readers[0], cluster: cluster, requestID: 1, operation: range)]))
        #expect(again == [.duplicate(.notKept)])
        // A write's result is kept, so a retransmitted write gets its real answer.
        let put = Request.signed(by: writer, cluster: cluster, requestID: 61, operation: .put(key: [1], value: [1]))
        let first = try state.execute(block([put]))
        let second = try state.execute(block([put]))
        guard case let .executed(result) = first[0] else { Issue.record("\(first)"); return }
        #expect(second == [.duplicate(result)])
    }

    @Test(arguments: UInt64(1)...8)
    func matchesTheReferenceAndEveryProofVerifies(seed: UInt64) throws {
        var rng = SeededRandom(seed: seed)
        var state = KeyValueState(genesis: .testGenesis(cluster: testCluster, parameters: ProtocolParameters()))
        var reference = Reference()
        let client = TestKeys.key(60)
        let cluster = ClusterID(raw: .zero)
        var requestID: UInt64 = 0
        var past: [(provable: ProvableState, root: Digest, records: [[UInt8]: (value: [UInt8], version: UInt64)])] = []
        for height in 1...UInt64(40) {
            let ops = (0..<Int.random(in: 0...6, using: &rng)).map { _ in Self.operation(&rng) }
            let requests = ops.map { op -> Request in
                requestID += 1
                return Request.signed(by: client, cluster: cluster, requestID: requestID, operation: op)
            }
            let header = BlockHeader(clusterID: cluster, height: height, view: 0, timestampMs: 0, proposer: 0,
                                     prevBlockHash: .zero, txRoot: .zero, historyRoot: .zero)
            let outcomes = try state.execute(Block(header: header, requests: requests))
            reference.height = height
            for (op, outcome) in zip(ops, outcomes) {
                #expect(outcome == .executed(reference.apply(op)), "seed \(seed) height \(height) \(op)")
            }
            let root = state.stateRoot
            past.append((state.provable, root, reference.records))
            for key in Self.keys {
                let proof = state.prove(key)
                #expect(proof.value == reference.records[key]?.value)
                #expect(proof.version == (reference.records[key]?.version ?? 0))
                try proof.verify(stateRoot: root, cluster: testCluster)
                // Tampering with anything the proof claims makes it fail.
                var lie = proof
                lie.value = (proof.value ?? []) + [1]
                #expect(throws: KeyProof.Failure.self) { try lie.verify(stateRoot: root, cluster: testCluster) }
                lie = proof
                lie.version += 1
                #expect(throws: KeyProof.Failure.self) { try lie.verify(stateRoot: root, cluster: testCluster) }
                lie = proof
                lie.height += 1
                #expect(throws: KeyProof.Failure.stateRootMismatch) { try lie.verify(stateRoot: root, cluster: testCluster) }
                if !proof.proof.siblings.isEmpty {
                    lie = proof
                    lie.proof.siblings[0] = Digest.sha256(lie.proof.siblings[0].bytes)
                    #expect(throws: KeyProof.Failure.self) { try lie.verify(stateRoot: root, cluster: testCluster) }
                }
                if proof.value != nil {
                    // Claiming absence of a present key fails.
                    lie = proof
                    lie.value = nil
                    lie.version = 0
                    #expect(throws: KeyProof.Failure.self) { try lie.verify(stateRoot: root, cluster: testCluster) }
                }
            }
        }
        // Proofs about past heights, from the maps kept then and today's histories, match
        // what the reference held then and verify against that height's root.
        for (provable, root, records) in past {
            for key in Self.keys {
                let proof = try state.prove(key, at: provable)
                #expect(proof.height == provable.height)
                #expect(proof.value == records[key]?.value, "seed \(seed) height \(provable.height)")
                #expect(proof.version == (records[key]?.version ?? 0))
                try proof.verify(stateRoot: root, cluster: testCluster)
                #expect(provable.stateRoot == root)
            }
        }
    }

    @Test func theRootDependsOnlyOnTheContents() {
        var rng = SeededRandom(seed: 42)
        let pairs = (0..<300).map { _ in (rng.digest(), rng.digest()) }
        var forward = AuthenticatedMap()
        for (k, v) in pairs { forward.set(k, value: v) }
        var backward = AuthenticatedMap()
        for (k, v) in pairs.reversed() { backward.set(k, value: v) }
        #expect(forward.rootHash == backward.rootHash)
        #expect(forward.count == 300)
        // Removing what was added on top gives back the earlier root.
        var grown = forward
        let extra = (0..<50).map { _ in rng.digest() }
        for k in extra { grown.set(k, value: k) }
        #expect(grown.rootHash != forward.rootHash)
        for k in extra { grown.remove(k) }
        #expect(grown.rootHash == forward.rootHash && grown.count == 300)
        for (k, _) in pairs { grown.remove(k) }
        #expect(grown.rootHash == .zero && grown.count == 0)
    }

    @Test(arguments: UInt64(1)...6)
    func aBatchOfChangesGivesTheTreeOfOneChangeAtATime(seed: UInt64) throws {
        var rng = SeededRandom(seed: seed)
        // Random keys, and keys that share their first 247 bits, so batches split deep down.
        var pool = (0..<60).map { _ in rng.digest() }
        let base = rng.bytes(32)
        pool += (0..<20).map { i in Digest(base.prefix(31) + [UInt8(i) ^ base[31]])! }
        var batched = AuthenticatedMap()
        var single = AuthenticatedMap()
        for round in 0..<40 {
            var changes: [Digest: Digest?] = [:]
            for _ in 0..<Int.random(in: 0...40, using: &rng) {
                // Removals include keys never added; the last round removes everything.
                let remove = round == 39 || (round > 0 && Bool.random(using: &rng))
                changes.updateValue(remove ? nil : rng.digest(), forKey: pool.randomElement(using: &rng)!)
            }
            if round == 39 { for key in pool { changes.updateValue(nil, forKey: key) } }
            let sorted = changes.map { AuthenticatedMap.Change(key: $0.key, value: $0.value) }.sorted { $0.key < $1.key }
            batched.apply(sorted: sorted)
            for change in sorted.shuffled(using: &rng) {
                if let value = change.value { single.set(change.key, value: value) } else { single.remove(change.key) }
            }
            #expect(batched.rootHash == single.rootHash, "seed \(seed) round \(round)")
            #expect(batched.count == single.count, "seed \(seed) round \(round)")
            for key in pool {
                #expect(try batched.proof(for: key).verify(key: key, root: single.rootHash) == single.value(for: key))
            }
        }
        #expect(batched.rootHash == .zero && batched.count == 0)
    }

    @Test func writesSettledOncePerCheckpointGiveTheRootOfWritesSettledEveryBlock() throws {
        var rng = SeededRandom(seed: 7)
        var everyBlock = KeyValueState(genesis: .testGenesis(cluster: testCluster, parameters: ProtocolParameters()))
        var atCheckpoints = KeyValueState(genesis: .testGenesis(cluster: testCluster, parameters: ProtocolParameters()))
        let clients = (0..<5).map { TestKeys.key(70 + $0) }
        let cluster = ClusterID(raw: .zero)
        var requestIDs = [UInt64](repeating: 0, count: clients.count)
        for height in 1...UInt64(70) {
            let requests = (0..<Int.random(in: 0...8, using: &rng)).map { _ -> Request in
                let c = Int.random(in: 0..<clients.count, using: &rng)
                requestIDs[c] += 1
                return Request.signed(by: clients[c], cluster: cluster, requestID: requestIDs[c], operation: Self.operation(&rng))
            }
            let block = Block(header: BlockHeader(clusterID: cluster, height: height, view: 0, timestampMs: 0, proposer: 0,
                                                  prevBlockHash: .zero, txRoot: .zero, historyRoot: .zero), requests: requests)
            #expect(try everyBlock.execute(block) == atCheckpoints.execute(block))
            let root = everyBlock.stateRoot
            if height % 16 == 0 {
                #expect(atCheckpoints.stateRoot == root, "height \(height)")
                // A snapshot of the settled state restores to the same root.
                var restored = try KeyValueState(snapshot: atCheckpoints.snapshot(), cluster: testCluster,
                                                 history: atCheckpoints.historyStore)
                #expect(restored.stateRoot == root)
            }
        }
        // A snapshot taken with writes still unsettled carries the settled root all the same.
        var restored = try KeyValueState(snapshot: atCheckpoints.snapshot(), cluster: testCluster,
                                         history: atCheckpoints.historyStore)
        #expect(restored.stateRoot == everyBlock.stateRoot)
    }

    @Test func overLimitRequestsGetErrorResultsAndChangeNothing() throws {
        var limits = ProtocolParameters()
        limits.keyBytesMax = 4
        limits.valueBytesMax = 4
        var state = KeyValueState(genesis: .testGenesis(cluster: testCluster, parameters: limits))
        let header = BlockHeader(clusterID: ClusterID(raw: .zero), height: 1, view: 0, timestampMs: 0, proposer: 0,
                                 prevBlockHash: .zero, txRoot: .zero, historyRoot: .zero)
        let client = TestKeys.key(61)
        let ops: [LedgerOperation] = [.put(key: [1, 2, 3, 4, 5], value: [1]), .put(key: [1], value: [1, 2, 3, 4, 5])]
        let outcomes = try state.execute(Block(header: header, requests: ops.enumerated().map {
            Request.signed(by: client, cluster: ClusterID(raw: .zero), requestID: UInt64($0.offset + 1), operation: $0.element)
        }))
        for outcome in outcomes {
            guard case let .executed(result) = outcome, case .rejected = result else {
                Issue.record("expected a rejection, got \(outcome)")
                continue
            }
        }
        #expect(state.records.isEmpty)
    }

    /// What a failed write records (and so hashes into the state root) is a code with numbers,
    /// never a sentence: rewording a message must not change a state root. The bytes are
    /// pinned here and in SPEC.md §8.4.
    @Test func failedWritesAreRecordedAsCodesWithFields() throws {
        var limits = ProtocolParameters()
        limits.keyBytesMax = 8
        var state = KeyValueState(genesis: .testGenesis(cluster: testCluster, parameters: limits))
        let client = TestKeys.key(62)
        let ops: [LedgerOperation] = [
            .put(key: [1], value: [9]),
            .cas(key: [1], expectedVersion: 0, value: [2]),
            .add(key: [2], delta: -5, min: 0, max: 10),
            .add(key: [2], delta: 11, min: 0, max: 10),
            .add(key: [1], delta: 1, min: 0, max: 10),
            .txn(guards: [.exists(key: [1]), .absent(key: [1])], writes: []),
            .txn(guards: [], writes: [.put(key: [3], value: [3]), .add(key: [2], delta: 1, min: 5, max: 4)]),
            .put(key: Array(repeating: 7, count: 9), value: []),
        ]
        var expected: [(OperationResult, [UInt8])] = [
            (.written(version: 1), [1, 1, 0, 0, 0, 0, 0, 0, 0]),
            (.conditionFailed(.versionMismatch(actual: 1, expected: 0)), [6, 1] + le(1) + le(0)),
            (.conditionFailed(.add(.belowMinimum(balance: -5, min: 0))), [6, 3, 4] + le(UInt64(bitPattern: -5)) + le(0)),
            (.conditionFailed(.add(.aboveMaximum(balance: 11, max: 10))), [6, 3, 5] + le(11) + le(10)),
            (.conditionFailed(.add(.notABalance(bytes: 1))), [6, 3, 2] + le(1)),
            (.conditionFailed(.guardFailed(index: 1)), [6, 2, 1, 0, 0, 0]),
            (.conditionFailed(.transactionAdd(index: 1, .emptyBounds(min: 5, max: 4))), [6, 4, 1, 0, 0, 0, 1] + le(5) + le(4)),
            (.rejected(.keyTooLong(bytes: 9, max: 8)), [7, 1] + le(9) + le(8)),
        ]
        // Signed one by one so each request's result stays in the client's record.
        for (i, op) in ops.enumerated() {
            let header = BlockHeader(clusterID: testCluster, height: state.height + 1, view: 0, timestampMs: 0, proposer: 0,
                                     prevBlockHash: .zero, txRoot: .zero, historyRoot: .zero)
            let request = Request.signed(by: client, cluster: testCluster, requestID: UInt64(i + 1), operation: op)
            let outcomes = try state.execute(Block(header: header, requests: [request]))
            let (result, bytes) = expected.removeFirst()
            #expect(outcomes == [.executed(result)], "operation \(i)")
            #expect(state.clients[client.publicKey]?.result == result)
            #expect(result.encoded() == bytes, "operation \(i): \(result.encoded())")
            #expect(try OperationResult(decoding: bytes) == result)
        }
        #expect(state.records.count == 1, "only the first put wrote")
        // The sentence is for people: it is never part of the encoding.
        #expect(OperationResult.conditionFailed(.versionMismatch(actual: 1, expected: 0)).encoded().allSatisfy { $0 < 0x20 })
    }

    /// The state root carries the cluster id like every other hash: equal contents in two
    /// clusters have different roots, and a proof from one does not verify in the other.
    @Test func theStateRootIsDomainSeparatedByCluster() {
        let other = ClusterID(raw: Bytes32(Array(repeating: 0x11, count: 32))!)
        var a = KeyValueState(genesis: .testGenesis(cluster: testCluster, parameters: ProtocolParameters()))
        var b = KeyValueState(genesis: .testGenesis(cluster: other, parameters: ProtocolParameters()))
        #expect(a.stateRoot != b.stateRoot)
        let proof = a.prove([1])
        #expect(throws: Never.self) { try proof.verify(stateRoot: a.stateRoot, cluster: testCluster) }
        #expect(throws: KeyProof.Failure.stateRootMismatch) { try proof.verify(stateRoot: a.stateRoot, cluster: other) }
    }

    @Test func historyKeepsEveryVersion() throws {
        var state = KeyValueState(genesis: .testGenesis(cluster: testCluster, parameters: ProtocolParameters()))
        let client = TestKeys.key(62)
        let cluster = ClusterID(raw: .zero)
        let ops: [LedgerOperation] = [.put(key: [1], value: [1]), .put(key: [1], value: [2]), .delete(key: [1])]
        for (i, op) in ops.enumerated() {
            let header = BlockHeader(clusterID: cluster, height: UInt64(i + 1), view: 0, timestampMs: 0, proposer: 0,
                                     prevBlockHash: .zero, txRoot: .zero, historyRoot: .zero)
            _ = try state.execute(Block(header: header, requests: [Request.signed(by: client, cluster: cluster,
                                                                                  requestID: UInt64(i + 1), operation: op)]))
        }
        #expect(try state.history(of: [1]) == [.init(height: 1, value: [1]), .init(height: 2, value: [2]), .init(height: 3, value: nil)])
        #expect(try state.history(of: [1], limit: 2) == [.init(height: 2, value: [2]), .init(height: 3, value: nil)])
        #expect(try state.history(of: [2]) == [])
    }

    /// A snapshot restores the same state; snapshot plus the rest of the log equals full replay.
    @Test func snapshotPlusReplayEqualsFullReplay() throws {
        var rng = SeededRandom(seed: 9)
        let client = TestKeys.key(63)
        let cluster = ClusterID(raw: .zero)
        var blocks: [Block] = []
        var requestID: UInt64 = 0
        for height in 1...UInt64(30) {
            let requests = (0..<3).map { _ -> Request in
                requestID += 1
                return Request.signed(by: client, cluster: cluster, requestID: requestID, operation: Self.operation(&rng))
            }
            blocks.append(Block(header: BlockHeader(clusterID: cluster, height: height, view: 0, timestampMs: 0, proposer: 0,
                                                    prevBlockHash: .zero, txRoot: .zero, historyRoot: .zero), requests: requests))
        }
        var full = KeyValueState(genesis: .testGenesis(cluster: testCluster, parameters: ProtocolParameters()))
        var atSnapshot = KeyValueState(genesis: .testGenesis(cluster: testCluster, parameters: ProtocolParameters()))
        for block in blocks {
            _ = try full.execute(block)
            if block.height <= 17 { _ = try atSnapshot.execute(block) }
        }
        // The snapshot names positions in the history store it was taken with.
        let store = atSnapshot.historyStore
        var restored = try KeyValueState(snapshot: atSnapshot.snapshot(), cluster: testCluster, history: store)
        #expect(restored.stateRoot == atSnapshot.stateRoot)
        for block in blocks.dropFirst(17) { _ = try restored.execute(block) }
        #expect(restored.stateRoot == full.stateRoot)
        #expect(restored.records == full.records && restored.clients == full.clients && restored.historyHeads == full.historyHeads)
        for key in Self.keys { #expect(try restored.history(of: key) == full.history(of: key)) }
        #expect(restored.snapshot() == full.snapshot())
        // A damaged snapshot is refused, and so is a store that lacks the snapshot's histories.
        var damaged = atSnapshot.snapshot()
        damaged[damaged.count / 2] ^= 1
        #expect(throws: CodecError.self) { _ = try KeyValueState(snapshot: damaged, cluster: testCluster, history: store) }
        #expect(throws: CodecError.self) {
            _ = try KeyValueState(snapshot: atSnapshot.snapshot(), cluster: testCluster, history: MemoryKeyHistory())
        }
    }
}

/// `value` as 8 little-endian bytes.
private func le(_ value: UInt64) -> [UInt8] { withUnsafeBytes(of: value.littleEndian) { Array($0) } }
