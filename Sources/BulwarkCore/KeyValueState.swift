/// The deterministic key-value state machine (DESIGN.md §2). Executing the same blocks in the
/// same order gives the same results and the same state root on every replica: no clock, no
/// randomness, no floating point, and no `Dictionary` iteration order reaches a result or a
/// hash (keys are sorted wherever order matters).
public struct KeyValueState: Sendable {
    public struct Record: Hashable, Sendable {
        public var value: [UInt8]
        /// Height of the block that last wrote this key.
        public var version: UInt64
    }

    /// Per-client deduplication: the last executed request and its result. Part of the state,
    /// so it survives restarts and state transfer.
    public struct ClientRecord: Hashable, Sendable {
        public var requestID: UInt64
        public var result: OperationResult
        /// The block the request executed in.
        public var height: Height
    }

    public private(set) var records: [[UInt8]: Record] = [:]
    public private(set) var clients: [PublicKey: ClientRecord] = [:]
    /// Height of the last executed block.
    public private(set) var height: Height = 0
    public let limits: ProtocolParameters

    public init(limits: ProtocolParameters) {
        self.limits = limits
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
    public mutating func execute(_ block: Block) -> [Outcome] {
        precondition(block.height == height + 1, "blocks execute in height order")
        height = block.height
        return block.requests.map { execute($0) }
    }

    mutating func execute(_ request: Request) -> Outcome {
        if let last = clients[request.client] {
            if request.requestID == last.requestID { return .duplicate(last.result) }
            if request.requestID < last.requestID { return .stale }
        }
        let result = apply(request.operation)
        clients[request.client] = ClientRecord(requestID: request.requestID, result: result, height: height)
        return .executed(result)
    }

    public func read(_ key: [UInt8]) -> Record? { records[key] }

    // MARK: - Operations

    private mutating func apply(_ operation: LedgerOperation) -> OperationResult {
        if let problem = limitViolation(operation) { return .rejected(problem) }
        switch operation {
        case let .put(key, value):
            records[key] = Record(value: value, version: height)
            return .written(version: height)
        case let .delete(key):
            return .deleted(existed: records.removeValue(forKey: key) != nil)
        case let .cas(key, expectedVersion, value):
            let current = records[key]?.version ?? 0
            guard current == expectedVersion else {
                return .conditionFailed("version is \(current), expected \(expectedVersion)")
            }
            records[key] = Record(value: value, version: height)
            return .written(version: height)
        case let .add(key, delta, min, max):
            switch addResult(key, delta: delta, min: min, max: max) {
            case let .success(balance):
                records[key] = Record(value: Self.encodeBalance(balance), version: height)
                return .balance(balance, version: height)
            case let .failure(reason):
                return .conditionFailed(reason)
            }
        case let .txn(guards, writes):
            for (index, check) in guards.enumerated() where !holds(check) {
                return .conditionFailed("guard \(index) does not hold")
            }
            // Check every add before writing anything: all or nothing.
            var staged = records
            for (index, write) in writes.enumerated() {
                switch write {
                case let .put(key, value): staged[key] = Record(value: value, version: height)
                case let .delete(key): staged.removeValue(forKey: key)
                case let .add(key, delta, min, max):
                    switch Self.addResult(staged[key], delta: delta, min: min, max: max) {
                    case let .success(balance): staged[key] = Record(value: Self.encodeBalance(balance), version: height)
                    case let .failure(reason): return .conditionFailed("write \(index): \(reason)")
                    }
                }
            }
            records = staged
            return .written(version: height)
        case let .get(key):
            let record = records[key]
            return .value(record?.value, version: record?.version ?? 0)
        case let .range(start, end, limit):
            let cap = Swift.min(Int(limit), limits.rangeResultsMax)
            let keys = records.keys.filter { key in
                !key.lexicographicallyPrecedes(start) && (end.isEmpty || key.lexicographicallyPrecedes(end))
            }.sorted { $0.lexicographicallyPrecedes($1) }.prefix(cap)
            return .entries(keys.map { OperationResult.Entry(key: $0, value: records[$0]!.value, version: records[$0]!.version) })
        }
    }

    enum AddResult { case success(Int64), failure(String) }

    private func addResult(_ key: [UInt8], delta: Int64, min: Int64, max: Int64) -> AddResult {
        Self.addResult(records[key], delta: delta, min: min, max: max)
    }

    private static func addResult(_ record: Record?, delta: Int64, min: Int64, max: Int64) -> AddResult {
        guard min <= max else { return .failure("bounds are empty: min \(min) > max \(max)") }
        let current: Int64
        if let record {
            guard let decoded = decodeBalance(record.value) else { return .failure("value is not an 8-byte balance") }
            current = decoded
        } else {
            current = 0
        }
        let (sum, overflow) = current.addingReportingOverflow(delta)
        guard !overflow else { return .failure("balance would overflow") }
        guard sum >= min && sum <= max else { return .failure("balance \(sum) would leave [\(min), \(max)]") }
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

    /// The first configured limit `operation` breaks, as a sentence.
    func limitViolation(_ operation: LedgerOperation) -> String? {
        func key(_ k: [UInt8]) -> String? {
            k.count > limits.keyBytesMax ? "key of \(k.count) bytes exceeds keyBytesMax \(limits.keyBytesMax)" : nil
        }
        func value(_ v: [UInt8]) -> String? {
            v.count > limits.valueBytesMax ? "value of \(v.count) bytes exceeds valueBytesMax \(limits.valueBytesMax)" : nil
        }
        switch operation {
        case let .put(k, v), let .cas(k, _, v): return key(k) ?? value(v)
        case let .delete(k), let .add(k, _, _, _), let .get(k): return key(k)
        case let .range(s, e, _): return key(s) ?? key(e)
        case let .txn(guards, writes):
            if guards.count + writes.count > limits.txnOperationsMax {
                return "transaction of \(guards.count + writes.count) operations exceeds txnOperationsMax \(limits.txnOperationsMax)"
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

    // MARK: - State root

    /// A 32-byte commitment to the whole state: the RFC 6962 root over every record and every
    /// client record, each in sorted order, so the same state gives the same root on every
    /// replica regardless of hash-table order.
    public var stateRoot: Digest {
        var leaves: [Digest] = []
        leaves.reserveCapacity(records.count + clients.count + 1)
        var header = CanonicalWriter()
        header.write(height)
        leaves.append(MerkleTree.leafHash(header.bytes))
        for key in records.keys.sorted(by: { $0.lexicographicallyPrecedes($1) }) {
            var w = CanonicalWriter()
            w.write(UInt8(1))
            w.writeBytes(key)
            w.writeBytes(records[key]!.value)
            w.write(records[key]!.version)
            leaves.append(MerkleTree.leafHash(w.bytes))
        }
        for client in clients.keys.sorted() {
            var w = CanonicalWriter()
            w.write(UInt8(2))
            w.write(client)
            w.write(clients[client]!.requestID)
            w.write(clients[client]!.result)
            w.write(clients[client]!.height)
            leaves.append(MerkleTree.leafHash(w.bytes))
        }
        return MerkleTree.root(leafHashes: leaves)
    }
}
