import BulwarkCore
/// The deterministic key-value state machine (ARCHITECTURE.md §2). Executing the same blocks in the
/// same order gives the same results and the same state root on every replica: no clock, no
/// randomness, no floating point, and no `Dictionary` iteration order reaches a result or a
/// hash (keys are sorted wherever order matters, and the authenticated map's shape depends only
/// on its contents).
public struct KeyValueState: Sendable {
    public struct Record: Hashable, Sendable {
        public var value: [UInt8]
        /// Height of the block that last wrote this key.
        public var version: UInt64
    }

    /// Per-client deduplication: the last executed request and its result. Part of the state
    /// (and of its root), so it survives restarts and state transfer. Only what exactly-once
    /// needs is kept: a write's result (a few bytes), never a read's (`.notKept`), so a client's
    /// record is bounded whatever it reads (PITFALLS: reply caches in replicated state).
    public struct ClientRecord: Hashable, Sendable {
        public var requestID: UInt64
        public var result: OperationResult
        /// The block the request executed in.
        public var height: Height
    }

    /// One version of a key (`KeyHistoryEntry`).
    public typealias HistoryEntry = KeyHistoryEntry

    public private(set) var records: [[UInt8]: Record] = [:]
    public private(set) var clients: [PublicKey: ClientRecord] = [:]
    /// Every version of every key written, shared with copies of this state (see
    /// `KeyHistoryStore`).
    public let historyStore: any KeyHistoryStore
    /// For every key ever written, the position of its newest history entry.
    public private(set) var historyHeads: [[UInt8]: UInt64] = [:]
    /// The store's end after this state's last write: this state's histories lie below it.
    public private(set) var historyEnd: UInt64 = 0
    /// Height of the last executed block.
    public private(set) var height: Height = 0
    /// The replicated configuration (SPEC.md §18), an entry of the authenticated map.
    public private(set) var governance: Governance
    /// Who may read and write what (SPEC.md §19), an entry of the authenticated map once it
    /// is not the empty policy.
    public private(set) var policy: Policy = .empty
    /// The policy and the configuration's admins and mode, indexed by client key.
    public private(set) var policyIndex: PolicyIndex
    /// The ledger limits in force: the current configuration's parameters.
    public private(set) var limits: ProtocolParameters
    /// The cluster this state belongs to; its id is part of the state root.
    public let cluster: ClusterID
    /// Records and client records, authenticated: its root is part of the state root. Writes
    /// reach it in batches (`pendingMap`); it is up to date only after `settle()`.
    private(set) var map = AuthenticatedMap()
    /// Changes to the map since it was last settled: the newest value hash per key hash, nil
    /// for a removed key. Only a state root or a proof needs the map itself, and a replica
    /// asks for those once per checkpoint: applying a checkpoint's writes in one batch hashes
    /// each changed node once, not once per write through it, and a key written many times
    /// (a client's record, a hot balance) once.
    private var pendingMap: [Digest: Digest?] = [:]
    /// Keys in byte order for `range`, rebuilt lazily after keys are added or removed.
    private var sortedKeys: [[UInt8]]?


    /// The state before the first block: no keys, and `genesis` (cluster.json) as the
    /// configuration of epoch 0. A replica passes a file-backed history store; by default
    /// histories are kept in memory.
    public init(genesis: ClusterConfig, history: any KeyHistoryStore = MemoryKeyHistory()) {
        cluster = genesis.clusterID
        governance = Governance(genesis: genesis)
        policyIndex = Policy.empty.index(admins: genesis.admins, mode: genesis.policy)
        limits = genesis.parameters
        historyStore = history
        historyEnd = history.end
        stageGovernance()
    }

    /// What executing one request did.
    public enum Outcome: Hashable, Sendable {
        /// Executed now, with this result.
        case executed(OperationResult)
        /// Already executed earlier; this is the cached result of that execution.
        case duplicate(OperationResult)
        /// Older than the client's last executed request: ignored, no reply.
        case stale
    }

    /// Executes every request of `block` in order. The caller has verified the block's
    /// certificate; request signatures were checked by consensus before the block committed.
    /// Throws only when the history store cannot be read; the state is then unusable.
    public mutating func execute(_ block: Block) throws(KeyHistoryError) -> [Outcome] {
        precondition(block.height == height + 1, "blocks execute in height order")
        height = block.height
        var outcomes: [Outcome] = []
        outcomes.reserveCapacity(block.requests.count)
        for request in block.requests { outcomes.append(try execute(request)) }
        if governance.endOfBlock(height) {
            limits = governance.config.parameters
            stageGovernance()
            // Policy approvals were signed for the epoch that ended; its admins may be gone.
            if !policy.proposals.isEmpty { policy.proposals = [] }
            stagePolicy()
        }
        return outcomes
    }

    private mutating func stageGovernance() {
        stage(Self.governanceKeyHash, Self.governanceValueHash(governance))
    }

    mutating func restoreGovernance(_ restored: Governance) {
        governance = restored
        limits = restored.config.parameters
        stageGovernance()
        stagePolicy()
    }

    /// The policy's map entry (absent while it is the empty policy, so a ledger that never
    /// had one has the state roots it always had), and its index.
    private mutating func stagePolicy() {
        stage(Self.policyKeyHash, policy == .empty ? nil : Self.policyValueHash(policy, cluster: cluster))
        policyIndex = policy.index(admins: governance.config.admins, mode: governance.config.policy)
    }

    mutating func restorePolicy(_ restored: Policy) {
        policy = restored
        stagePolicy()
    }

    /// What may leave a replica other than an ordered reply (SPEC.md §19.4).
    public enum Disclosure: Sendable {
        /// A key's value, version or absence (a verified read).
        case key([UInt8])
        /// Whole blocks, which hold every value ever written (state transfer, joining).
        case blocks
    }

    /// The one decision of whether `client` may receive `what`, by this state's policy and
    /// configuration: nil when it may, else what it lacks. A key goes to a caller with read on
    /// it; blocks go to validators of the current or the scheduled configuration, and to a
    /// caller with read on every key (anyone, in an open cluster).
    public func mayReceive(_ what: Disclosure, client: PublicKey) -> PermissionDenial? {
        let caller = policyIndex.caller(client)
        switch what {
        case let .key(key):
            guard !caller.may(.read, key) else { return nil }
            return PermissionDenial(operation: .get, key: key, permission: .read, prefix: policy.suggestedPrefix(.read, for: key))
        case .blocks:
            let validators = [governance.config] + (governance.scheduled.map { [$0.config] } ?? [])
            if validators.contains(where: { config in config.validators.contains { $0.publicKey == client } }) { return nil }
            guard !caller.mayRead(from: [], to: []) else { return nil }
            return PermissionDenial(operation: .range, key: [], permission: .read, prefix: [])
        }
    }

    mutating func execute(_ request: Request) throws(KeyHistoryError) -> Outcome {
        if let last = clients[request.client] {
            if request.requestID == last.requestID { return .duplicate(last.result) }
            if request.requestID < last.requestID { return .stale }
        }
        let caller = policyIndex.caller(request.client)
        let result = try apply(request.operation, caller: caller)
        // A stranger's request is denied and leaves nothing, not even a deduplication record
        // (SPEC.md §8.2): otherwise each fresh key a Byzantine primary orders would grow the
        // state for ever. Re-executing its duplicate denies it again, changing nothing.
        guard caller.isKnown else { return .executed(result) }
        let kept = request.operation.isReadOnly ? OperationResult.notKept : result
        let record = ClientRecord(requestID: request.requestID, result: kept, height: height)
        clients[request.client] = record
        stage(Self.clientKeyHash(request.client), Self.clientValueHash(record))
        return .executed(result)
    }

    /// Every change to a key goes through here: records, history, map and key order together.
    private mutating func write(_ key: [UInt8], _ record: Record?) {
        let existed = records[key] != nil
        if let record {
            records[key] = record
            stage(Self.recordKeyHash(key), Self.recordValueHash(record))
        } else {
            records[key] = nil
            stage(Self.recordKeyHash(key), nil)
        }
        historyHeads[key] = historyStore.append(HistoryEntry(height: height, value: record?.value), previous: historyHeads[key])
        historyEnd = historyStore.end
        if existed != (record != nil) { sortedKeys = nil }
    }

    // Used only to rebuild a state from a snapshot.
    mutating func restoreRecord(_ key: [UInt8], _ record: Record) {
        records[key] = record
        stage(Self.recordKeyHash(key), Self.recordValueHash(record))
    }

    mutating func restoreClient(_ client: PublicKey, _ record: ClientRecord) {
        clients[client] = record
        stage(Self.clientKeyHash(client), Self.clientValueHash(record))
    }

    private mutating func stage(_ keyHash: Digest, _ valueHash: Digest?) {
        pendingMap.updateValue(valueHash, forKey: keyHash)
    }

    /// Brings the map up to date with every write so far, in one batch (see `pendingMap`).
    /// The changes are sorted by key hash, so no dictionary order reaches the map, and the
    /// map's shape depends only on its contents.
    public mutating func settle() {
        guard !pendingMap.isEmpty else { return }
        let changes = pendingMap.map { AuthenticatedMap.Change(key: $0.key, value: $0.value) }.sorted { $0.key < $1.key }
        pendingMap.removeAll(keepingCapacity: true)
        map.apply(sorted: changes)
    }

    mutating func restoreHistory(heads: [[UInt8]: UInt64], end: UInt64) {
        historyHeads = heads
        historyEnd = end
    }
    mutating func restoreHeight(_ height: Height) { self.height = height }

    public func read(_ key: [UInt8]) -> Record? { records[key] }

    // MARK: - Operations

    /// A `get` of `key` by `client` answered from this state without ordering (a fast read,
    /// SPEC.md §8.6): exactly the result an ordered `get` executed now would give, changing
    /// nothing (not even the client table).
    public func readWithoutOrdering(_ key: [UInt8], client: PublicKey) -> OperationResult {
        let operation = LedgerOperation.get(key: key)
        return refusal(of: operation, caller: policyIndex.caller(client)) ?? value(of: key)
    }

    /// What every operation meets first: the size limits, then the policy.
    private func refusal(of operation: LedgerOperation, caller: Policy.Caller) -> OperationResult? {
        if let rejection = limitViolation(operation) { return .rejected(rejection) }
        if let denial = authorize(operation, caller: caller) { return .permissionDenied(denial) }
        return nil
    }

    private func value(of key: [UInt8]) -> OperationResult {
        let record = records[key]
        return .value(record?.value, version: record?.version ?? 0)
    }

    private mutating func apply(_ operation: LedgerOperation, caller: Policy.Caller) throws(KeyHistoryError) -> OperationResult {
        if let refused = refusal(of: operation, caller: caller) { return refused }
        switch operation {
        case let .put(key, value):
            write(key, Record(value: value, version: height))
            return .written(version: height)
        case let .delete(key):
            let existed = records[key] != nil
            if existed { write(key, nil) }
            return caller.may(.read, key) ? .deleted(existed: existed) : .withheld
        case let .cas(key, expectedVersion, value):
            let current = records[key]?.version ?? 0
            guard current == expectedVersion else {
                return .conditionFailed(.versionMismatch(actual: current, expected: expectedVersion))
            }
            write(key, Record(value: value, version: height))
            return .written(version: height)
        case let .add(key, delta, min, max):
            let reads = caller.may(.read, key)
            switch addResult(key, delta: delta, min: min, max: max) {
            case let .success(balance):
                write(key, Record(value: Self.encodeBalance(balance), version: height))
                return reads ? .balance(balance, version: height) : .withheld
            case let .failure(failure):
                return .conditionFailed(.add(reads ? failure : .withheld))
            }
        case let .txn(guards, writes): return transaction(guards: guards, writes: writes, caller: caller)
        case let .get(key): return value(of: key)
        case let .range(start, end, limit): return .entries(range(from: start, to: end, limit: limit))
        case let .history(key, limit):
            let cap = Swift.min(Int(limit), limits.rangeResultsMax)
            return .history(try history(of: key, limit: cap, bytesMax: limits.resultBytesMax))
        case let .approveConfig(request):
            let result = governance.apply(request, height: height)
            stageGovernance()
            return result
        case .governance:
            return .governance(governance)
        case let .approvePolicy(request):
            let result = policy.apply(request, epoch: governance.epoch, config: governance.config, keyBytesMax: limits.keyBytesMax)
            stagePolicy()
            return result
        case .policy:
            return .policy(policy)
        }
    }

    /// A transaction: every guard must hold; every write is staged in an overlay and every add
    /// checked before anything applies (all or nothing). Writes apply in order, so a later
    /// write to a key wins.
    private mutating func transaction(guards: [LedgerOperation.Guard], writes: [LedgerOperation.Write], caller: Policy.Caller) -> OperationResult {
        for (index, check) in guards.enumerated() where !holds(check) {
            return .conditionFailed(.guardFailed(index: UInt32(index)))
        }
        var staged: [[UInt8]: Record?] = [:]
        var order: [[UInt8]] = []
        func current(_ key: [UInt8]) -> Record? { staged[key] ?? records[key] }
        for (index, w) in writes.enumerated() {
            let key: [UInt8]
            let next: Record?
            switch w {
            case let .put(k, value): key = k; next = Record(value: value, version: height)
            case let .delete(k): key = k; next = nil
            case let .add(k, delta, min, max):
                key = k
                switch Self.addResult(current(k), delta: delta, min: min, max: max) {
                case let .success(balance): next = Record(value: Self.encodeBalance(balance), version: height)
                case let .failure(failure):
                    return .conditionFailed(.transactionAdd(index: UInt32(index), caller.may(.read, k) ? failure : .withheld))
                }
            }
            if staged[key] == nil { order.append(key) }
            staged[key] = .some(next)
        }
        for key in order {
            let next = staged[key]!
            if next != nil || records[key] != nil { write(key, next) }
        }
        return .written(version: height)
    }

    /// The entries from `start` (inclusive) to `end` (exclusive; empty: no end) in key order,
    /// at most `limit` and `rangeResultsMax`, and within `resultBytesMax` (one entry at least).
    private mutating func range(from start: [UInt8], to end: [UInt8], limit: UInt32) -> [OperationResult.Entry] {
        let cap = Swift.min(Int(limit), limits.rangeResultsMax)
        if sortedKeys == nil { sortedKeys = records.keys.sorted { $0.lexicographicallyPrecedes($1) } }
        let keys = sortedKeys!
        // Binary search for the first key ≥ start.
        var low = 0
        var high = keys.count
        while low < high {
            let mid = (low + high) / 2
            if keys[mid].lexicographicallyPrecedes(start) { low = mid + 1 } else { high = mid }
        }
        var entries: [OperationResult.Entry] = []
        var bytes = 0
        while low < keys.count, entries.count < cap, end.isEmpty || keys[low].lexicographicallyPrecedes(end) {
            let record = records[keys[low]]!
            bytes += keys[low].count + record.value.count
            if bytes > limits.resultBytesMax, !entries.isEmpty { break }
            entries.append(OperationResult.Entry(key: keys[low], value: record.value, version: record.version))
            low += 1
        }
        return entries
    }

    /// The first part of `operation` the caller's rights do not cover (SPEC.md §19.2), in
    /// order: a transaction's guards, then its writes.
    func authorize(_ operation: LedgerOperation, caller: Policy.Caller) -> PermissionDenial? {
        if caller.unrestricted { return nil }
        func need(_ permission: Permission, _ key: [UInt8], _ what: DeniedOperation) -> PermissionDenial? {
            caller.may(permission, key) ? nil
                : PermissionDenial(operation: what, key: key, permission: permission, prefix: policy.suggestedPrefix(permission, for: key))
        }
        // Credit is a delta > 0 (an add of 0 would create and re-version a key without paying
        // anything); bounds other than the whole i64 range read the balance they test.
        func adding(_ key: [UInt8], _ delta: Int64, _ min: Int64, _ max: Int64) -> PermissionDenial? {
            need(delta > 0 ? .credit : .write, key, .add) ?? (min == .min && max == .max ? nil : need(.read, key, .add))
        }
        switch operation {
        case let .put(key, _): return need(.write, key, .put)
        case let .delete(key): return need(.write, key, .delete)
        // A cas tests the key's version: it reads.
        case let .cas(key, _, _): return need(.write, key, .cas) ?? need(.read, key, .cas)
        case let .add(key, delta, min, max): return adding(key, delta, min, max)
        case let .get(key): return need(.read, key, .get)
        case let .history(key, _): return need(.read, key, .history)
        case let .range(start, end, _):
            return caller.mayRead(from: start, to: end) ? nil
                : PermissionDenial(operation: .range, key: start, permission: .read, prefix: policy.suggestedPrefix(.read, for: start))
        case let .txn(guards, writes):
            for check in guards {
                if let denial = need(.read, check.key, .guardRead) { return denial }
            }
            for write in writes {
                let denial: PermissionDenial?
                switch write {
                case let .put(key, _): denial = need(.write, key, .put)
                case let .delete(key): denial = need(.write, key, .delete)
                case let .add(key, delta, min, max): denial = adding(key, delta, min, max)
                }
                if let denial { return denial }
            }
            return nil
        case .approveConfig, .approvePolicy:
            guard !caller.mayAdminister else { return nil }
            let what: DeniedOperation = if case .approveConfig = operation { .approveConfig } else { .approvePolicy }
            return PermissionDenial(operation: what, key: [], permission: .admin, prefix: [])
        case .governance, .policy:
            guard !caller.isKnown else { return nil }
            return PermissionDenial(operation: operation == .governance ? .governance : .policy, key: [], permission: .read, prefix: [])
        }
    }

    enum AddResult { case success(Int64), failure(AddFailure) }

    private func addResult(_ key: [UInt8], delta: Int64, min: Int64, max: Int64) -> AddResult {
        Self.addResult(records[key], delta: delta, min: min, max: max)
    }

    private static func addResult(_ record: Record?, delta: Int64, min: Int64, max: Int64) -> AddResult {
        guard min <= max else { return .failure(.emptyBounds(min: min, max: max)) }
        let current: Int64
        if let record {
            guard let decoded = decodeBalance(record.value) else { return .failure(.notABalance(bytes: UInt64(record.value.count))) }
            current = decoded
        } else {
            current = 0
        }
        let (sum, overflow) = current.addingReportingOverflow(delta)
        guard !overflow else { return .failure(.overflow(balance: current, delta: delta)) }
        guard sum >= min else { return .failure(.belowMinimum(balance: sum, min: min)) }
        guard sum <= max else { return .failure(.aboveMaximum(balance: sum, max: max)) }
        return .success(sum)
    }

    /// Balances are stored as 8 little-endian bytes.
    public static func encodeBalance(_ value: Int64) -> [UInt8] {
        withUnsafeBytes(of: value.littleEndian) { Array($0) }
    }

    public static func decodeBalance(_ bytes: [UInt8]) -> Int64? {
        guard bytes.count == 8 else { return nil }
        return bytes.reversed().reduce(Int64(0)) { $0 << 8 | Int64($1) }
    }

    private func holds(_ check: LedgerOperation.Guard) -> Bool {
        switch check {
        case let .versionEquals(key, version): return (records[key]?.version ?? 0) == version
        case let .valueEquals(key, value): return records[key]?.value == value
        case let .exists(key): return records[key] != nil
        case let .absent(key): return records[key] == nil
        }
    }

    /// The first configured limit `operation` breaks.
    func limitViolation(_ operation: LedgerOperation) -> Rejection? {
        func key(_ k: [UInt8]) -> Rejection? {
            k.count > limits.keyBytesMax ? .keyTooLong(bytes: UInt64(k.count), max: UInt64(limits.keyBytesMax)) : nil
        }
        func value(_ v: [UInt8]) -> Rejection? {
            v.count > limits.valueBytesMax ? .valueTooLong(bytes: UInt64(v.count), max: UInt64(limits.valueBytesMax)) : nil
        }
        switch operation {
        case let .put(k, v), let .cas(k, _, v): return key(k) ?? value(v)
        case let .delete(k), let .add(k, _, _, _), let .get(k), let .history(k, _): return key(k)
        case let .range(s, e, _): return key(s) ?? key(e)
        // Bounded by the request size; the configuration carried is validated when decoded.
        case .approveConfig, .governance, .approvePolicy, .policy: return nil
        case let .txn(guards, writes):
            if guards.count + writes.count > limits.txnOperationsMax {
                return .tooManyOperations(count: UInt64(guards.count + writes.count), max: UInt64(limits.txnOperationsMax))
            }
            for g in guards {
                switch g {
                case let .versionEquals(k, _), let .exists(k), let .absent(k): if let p = key(k) { return p }
                case let .valueEquals(k, v): if let p = key(k) ?? value(v) { return p }
                }
            }
            for w in writes {
                switch w {
                case let .put(k, v): if let p = key(k) ?? value(v) { return p }
                case let .delete(k), let .add(k, _, _, _): if let p = key(k) { return p }
                }
            }
            return nil
        }
    }

    // MARK: - State root and proofs

    static func recordKeyHash(_ key: [UInt8]) -> Digest { StateHashing.recordKeyHash(key) }

    static func recordValueHash(_ record: Record) -> Digest {
        StateHashing.recordValueHash(value: record.value, version: record.version)
    }

    static func clientKeyHash(_ client: PublicKey) -> Digest {
        var h = SHA256Hasher()
        h.update([2])
        client.raw.withUnsafeBytes { h.update($0) }
        return h.finalize()
    }

    static func clientValueHash(_ record: ClientRecord) -> Digest {
        var w = CanonicalWriter()
        w.write(record.requestID)
        w.write(record.result)
        w.write(record.height)
        return Digest.sha256(w.bytes)
    }

    /// The map entry that holds the replicated configuration: key hash SHA-256(0x03).
    static let governanceKeyHash = StateHashing.governanceKeyHash
    static let policyKeyHash = Digest.sha256([4])

    static func policyValueHash(_ policy: Policy, cluster: ClusterID) -> Digest {
        Digest.tagged(.policy, cluster: cluster, policy.encoded())
    }

    static func governanceValueHash(_ governance: Governance) -> Digest { StateHashing.governanceValueHash(governance) }

    /// SHA-256(len(tag) || "bulwark/v1/state" || clusterID || height || map root), the
    /// domain separation every other hash has (SPEC.md §9.3).
    static func stateRoot(cluster: ClusterID, height: Height, mapRoot: Digest) -> Digest {
        StateHashing.stateRoot(cluster: cluster, height: height, mapRoot: mapRoot)
    }

    /// A 32-byte commitment to the whole state after `height`: every record (value and
    /// version) and every client record. Settles the map first (see `pendingMap`): O(1) when
    /// nothing was written since it was last asked for.
    public var stateRoot: Digest {
        mutating get {
            settle()
            return Self.stateRoot(cluster: cluster, height: height, mapRoot: map.rootHash)
        }
    }

    /// A proof of `key`'s current value and version, or of its absence, that a client checks
    /// against a certified state root alone.
    public mutating func prove(_ key: [UInt8]) -> KeyProof {
        settle()
        let record = records[key]
        return KeyProof(key: key, value: record?.value, version: record?.version ?? 0, height: height,
                        mapRoot: map.rootHash, proof: map.proof(for: Self.recordKeyHash(key)))
    }
}

extension KeyValueState {
    /// A proof of the replicated configuration in the state after `height`, which a client
    /// checks against a certified state root alone.
    public mutating func proveGovernance() -> GovernanceProof {
        settle()
        return GovernanceProof(governance: governance, height: height, mapRoot: map.rootHash,
                               proof: map.proof(for: Self.governanceKeyHash))
    }
}
