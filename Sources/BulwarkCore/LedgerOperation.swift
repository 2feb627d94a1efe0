/// What a client asks the ledger to do (ARCHITECTURE.md §2). Keys and values are opaque bytes; keys
/// are ordered by their bytes for `range`.
public enum LedgerOperation: Hashable, Sendable {
    case put(key: [UInt8], value: [UInt8])
    case delete(key: [UInt8])
    /// Writes `value` only if the key's current version is `expectedVersion`
    /// (0 means: only if the key does not exist).
    case cas(key: [UInt8], expectedVersion: UInt64, value: [UInt8])
    /// Adds `delta` to the key's signed 64-bit integer balance (absent = 0); fails as a whole
    /// if the result would leave `[min, max]` or overflow.
    case add(key: [UInt8], delta: Int64, min: Int64, max: Int64)
    /// All-or-nothing: if every guard holds, applies every write; otherwise applies none.
    case txn(guards: [Guard], writes: [Write])
    case get(key: [UInt8])
    /// Keys in `[start, end)` in byte order (an empty `end` means no upper bound), at most
    /// `limit` of them.
    case range(start: [UInt8], end: [UInt8], limit: UInt32)
    /// The key's newest `limit` versions (oldest first), each with the height that wrote it;
    /// a deletion is a version without a value.
    case history(key: [UInt8], limit: UInt32)
    /// One admin's approval of a new configuration (SPEC.md §18.3); the approval that reaches
    /// the threshold schedules the change.
    case approveConfig(ConfigApprovalRequest)
    /// The replicated configuration: epoch, configuration, proposals, scheduled change.
    case governance
    /// One admin's approval of policy edits (SPEC.md §19.3); the approval that reaches the
    /// threshold applies them.
    case approvePolicy(PolicyApprovalRequest)
    /// The policy: roles, bindings, open proposals.
    case policy

    /// True for operations that never change state.
    public var isReadOnly: Bool {
        switch self {
        case .get, .range, .history, .governance, .policy: return true
        default: return false
        }
    }

    /// A condition a transaction checks before writing.
    public enum Guard: Hashable, Sendable {
        case versionEquals(key: [UInt8], version: UInt64)
        case valueEquals(key: [UInt8], value: [UInt8])
        case exists(key: [UInt8])
        case absent(key: [UInt8])
    }

    /// A write inside a transaction.
    public enum Write: Hashable, Sendable {
        case put(key: [UInt8], value: [UInt8])
        case delete(key: [UInt8])
        case add(key: [UInt8], delta: Int64, min: Int64, max: Int64)
    }
}

extension LedgerOperation: CanonicalCodable {
    public func encode(to w: inout CanonicalWriter) {
        switch self {
        case let .put(key, value):
            w.write(UInt8(1)); w.writeBytes(key); w.writeBytes(value)
        case let .delete(key):
            w.write(UInt8(2)); w.writeBytes(key)
        case let .cas(key, expectedVersion, value):
            w.write(UInt8(3)); w.writeBytes(key); w.write(expectedVersion); w.writeBytes(value)
        case let .add(key, delta, min, max):
            w.write(UInt8(4)); w.writeBytes(key); w.write(delta); w.write(min); w.write(max)
        case let .txn(guards, writes):
            w.write(UInt8(5)); w.write(guards); w.write(writes)
        case let .get(key):
            w.write(UInt8(6)); w.writeBytes(key)
        case let .range(start, end, limit):
            w.write(UInt8(7)); w.writeBytes(start); w.writeBytes(end); w.write(limit)
        case let .history(key, limit):
            w.write(UInt8(8)); w.writeBytes(key); w.write(limit)
        case let .approveConfig(request):
            w.write(UInt8(9)); w.write(request)
        case .governance:
            w.write(UInt8(10))
        case let .approvePolicy(request):
            w.write(UInt8(11)); w.write(request)
        case .policy:
            w.write(UInt8(12))
        }
    }

    public init(from r: inout CanonicalReader) throws(CodecError) {
        let tag = try r.readUInt8("operation tag")
        switch tag {
        case 1:
            self = .put(key: try r.readKey(), value: try r.readValue())
        case 2:
            self = .delete(key: try r.readKey())
        case 3:
            self = .cas(key: try r.readKey(), expectedVersion: try r.readUInt64("cas expected version"), value: try r.readValue())
        case 4:
            self = .add(key: try r.readKey(), delta: try r.readInt64("add delta"),
                        min: try r.readInt64("add min"), max: try r.readInt64("add max"))
        case 5:
            self = .txn(guards: try r.readArray(Guard.self, "txn guards", max: CodecLimits.operationsMax),
                        writes: try r.readArray(Write.self, "txn writes", max: CodecLimits.operationsMax))
        case 6:
            self = .get(key: try r.readKey())
        case 7:
            self = .range(start: try r.readKey(), end: try r.readKey(), limit: try r.readUInt32("range limit"))
        case 8:
            self = .history(key: try r.readKey(), limit: try r.readUInt32("history limit"))
        case 9:
            self = .approveConfig(try r.read(ConfigApprovalRequest.self))
        case 10:
            self = .governance
        case 11:
            self = .approvePolicy(try r.read(PolicyApprovalRequest.self))
        case 12:
            self = .policy
        default:
            throw .unknownTag(type: "operation", tag: tag)
        }
    }
}

extension LedgerOperation.Guard {
    /// The key the guard reads.
    public var key: [UInt8] {
        switch self {
        case let .versionEquals(key, _), let .valueEquals(key, _), let .exists(key), let .absent(key): return key
        }
    }
}

extension LedgerOperation.Guard: CanonicalCodable {
    public func encode(to w: inout CanonicalWriter) {
        switch self {
        case let .versionEquals(key, version): w.write(UInt8(1)); w.writeBytes(key); w.write(version)
        case let .valueEquals(key, value): w.write(UInt8(2)); w.writeBytes(key); w.writeBytes(value)
        case let .exists(key): w.write(UInt8(3)); w.writeBytes(key)
        case let .absent(key): w.write(UInt8(4)); w.writeBytes(key)
        }
    }

    public init(from r: inout CanonicalReader) throws(CodecError) {
        let tag = try r.readUInt8("guard tag")
        switch tag {
        case 1: self = .versionEquals(key: try r.readKey(), version: try r.readUInt64("guard version"))
        case 2: self = .valueEquals(key: try r.readKey(), value: try r.readValue())
        case 3: self = .exists(key: try r.readKey())
        case 4: self = .absent(key: try r.readKey())
        default: throw .unknownTag(type: "guard", tag: tag)
        }
    }
}

extension LedgerOperation.Write: CanonicalCodable {
    public func encode(to w: inout CanonicalWriter) {
        switch self {
        case let .put(key, value): w.write(UInt8(1)); w.writeBytes(key); w.writeBytes(value)
        case let .delete(key): w.write(UInt8(2)); w.writeBytes(key)
        case let .add(key, delta, min, max):
            w.write(UInt8(3)); w.writeBytes(key); w.write(delta); w.write(min); w.write(max)
        }
    }

    public init(from r: inout CanonicalReader) throws(CodecError) {
        let tag = try r.readUInt8("write tag")
        switch tag {
        case 1: self = .put(key: try r.readKey(), value: try r.readValue())
        case 2: self = .delete(key: try r.readKey())
        case 3:
            self = .add(key: try r.readKey(), delta: try r.readInt64("add delta"),
                        min: try r.readInt64("add min"), max: try r.readInt64("add max"))
        default: throw .unknownTag(type: "write", tag: tag)
        }
    }
}

extension CanonicalReader {
    public mutating func readKey() throws(CodecError) -> [UInt8] { try readBytes("key", max: CodecLimits.keyBytesMax) }
    public mutating func readValue() throws(CodecError) -> [UInt8] { try readBytes("value", max: CodecLimits.valueBytesMax) }
}

extension LedgerOperation {
    /// `amount` moved from one balance to another, all or nothing, as `bulwark transfer` sends
    /// it: the payer's balance may not go below zero; the payee's side has no bounds, since a
    /// bound reads the balance and a payer may hold only credit on it (SPEC.md §19.2).
    public static func transfer(from: [UInt8], to: [UInt8], amount: Int64) -> LedgerOperation {
        .txn(guards: [], writes: [.add(key: from, delta: -amount, min: 0, max: .max),
                                  .add(key: to, delta: amount, min: .min, max: .max)])
    }
}
