/// The outcome of one request, as replicas reply it and the ledger records it.
public enum OperationResult: Hashable, Sendable {
    /// A put, cas or transaction applied; the written keys now have this version.
    case written(version: UInt64)
    /// A delete applied; `existed` tells whether the key was there.
    case deleted(existed: Bool)
    /// An add applied; the new balance.
    case balance(Int64, version: UInt64)
    /// A get: the value and its version, or nil and 0 when absent.
    case value([UInt8]?, version: UInt64)
    /// A range: matching entries in key order.
    case entries([Entry])
    /// A history: the key's newest versions, oldest first.
    case history([KeyHistoryEntry])
    /// A cas, add or transaction whose condition did not hold; nothing was written.
    case conditionFailed(ConditionFailure)
    /// A request the ledger refuses (over a configured limit); nothing was written.
    case rejected(Rejection)
    /// A read that already executed, retransmitted: the ledger keeps no read's result (reads
    /// change nothing, so exactly-once does not need it, and keeping it would let free client
    /// keys inflate the state). The client asks again under a new request id.
    case notKept
    /// An approval counted (SPEC.md §18.3); `lastHeight` is set when it completed the change.
    case configApproved(ConfigProgress)
    /// An approval that changed nothing.
    case configRefused(ConfigRefusal)
    /// The replicated configuration.
    case governance(Governance)
    /// The policy does not allow the request (SPEC.md §19.2); nothing changed.
    case permissionDenied(PermissionDenial)
    /// A policy approval counted; `applied` is set when it applied the edits.
    case policyApproved(PolicyProgress)
    /// A policy approval that changed nothing.
    case policyRefused(PolicyRefusal)
    /// The policy.
    case policy(Policy)
    /// A delete or add by a caller without read on its key applied; what the key held is not
    /// told (SPEC.md §19.2).
    case withheld

    public struct Entry: Hashable, Sendable, CanonicalCodable {
        public var key: [UInt8]
        public var value: [UInt8]
        public var version: UInt64

        public init(key: [UInt8], value: [UInt8], version: UInt64) {
            self.key = key
            self.value = value
            self.version = version
        }

        public func encode(to w: inout CanonicalWriter) {
            w.writeBytes(key); w.writeBytes(value); w.write(version)
        }

        public init(from r: inout CanonicalReader) throws(CodecError) {
            key = try r.readKey()
            value = try r.readValue()
            version = try r.readUInt64("entry version")
        }
    }

    /// True when the request changed nothing because a condition failed or it was refused.
    public var isFailure: Bool {
        switch self {
        case .conditionFailed, .rejected, .configRefused, .permissionDenied, .policyRefused: return true
        default: return false
        }
    }
}

extension OperationResult: CanonicalCodable {
    public func encode(to w: inout CanonicalWriter) {
        switch self {
        case let .written(version): w.write(UInt8(1)); w.write(version)
        case let .deleted(existed): w.write(UInt8(2)); w.write(existed)
        case let .balance(amount, version): w.write(UInt8(3)); w.write(amount); w.write(version)
        case let .value(value, version):
            w.write(UInt8(4))
            w.write(value != nil)
            if let value { w.writeBytes(value) }
            w.write(version)
        case let .entries(entries): w.write(UInt8(5)); w.write(entries)
        case let .conditionFailed(failure): w.write(UInt8(6)); w.write(failure)
        case let .rejected(rejection): w.write(UInt8(7)); w.write(rejection)
        case let .history(entries): w.write(UInt8(8)); w.write(entries)
        case .notKept: w.write(UInt8(9))
        case let .configApproved(progress): w.write(UInt8(10)); w.write(progress)
        case let .configRefused(refusal): w.write(UInt8(11)); w.write(refusal)
        case let .governance(governance): w.write(UInt8(12)); w.write(governance)
        case let .permissionDenied(denial): w.write(UInt8(13)); w.write(denial)
        case let .policyApproved(progress): w.write(UInt8(14)); w.write(progress)
        case let .policyRefused(refusal): w.write(UInt8(15)); w.write(refusal)
        case let .policy(policy): w.write(UInt8(16)); w.write(policy)
        case .withheld: w.write(UInt8(17))
        }
    }

    public init(from r: inout CanonicalReader) throws(CodecError) {
        let tag = try r.readUInt8("result tag")
        switch tag {
        case 1: self = .written(version: try r.readUInt64("version"))
        case 2: self = .deleted(existed: try r.readBool("existed"))
        case 3: self = .balance(try r.readInt64("balance"), version: try r.readUInt64("version"))
        case 4:
            let present = try r.readBool("value present")
            let value = present ? try r.readValue() : nil
            self = .value(value, version: try r.readUInt64("version"))
        case 5: self = .entries(try r.readArray(Entry.self, "entries", max: 1 << 20))
        case 6: self = .conditionFailed(try r.read(ConditionFailure.self))
        case 7: self = .rejected(try r.read(Rejection.self))
        case 8: self = .history(try r.readArray(KeyHistoryEntry.self, "history", max: 1 << 20))
        case 9: self = .notKept
        case 10: self = .configApproved(try r.read(ConfigProgress.self))
        case 11: self = .configRefused(try r.read(ConfigRefusal.self))
        case 12: self = .governance(try r.read(Governance.self))
        case 13: self = .permissionDenied(try r.read(PermissionDenial.self))
        case 14: self = .policyApproved(try r.read(PolicyProgress.self))
        case 15: self = .policyRefused(try r.read(PolicyRefusal.self))
        case 16: self = .policy(try r.read(Policy.self))
        case 17: self = .withheld
        default: throw .unknownTag(type: "result", tag: tag)
        }
    }
}

extension KeyHistoryEntry: CanonicalCodable {
    public func encode(to w: inout CanonicalWriter) {
        w.write(height)
        w.write(value != nil)
        if let value { w.writeBytes(value) }
    }

    public init(from r: inout CanonicalReader) throws(CodecError) {
        let height = try r.readUInt64("history height")
        let present = try r.readBool("history value present")
        self.init(height: height, value: present ? try r.readValue() : nil)
    }
}

/// Why a cas, add or transaction changed nothing (SPEC.md §8.4): a stable code with the
/// numbers that explain it. This, never a sentence, is what the ledger records and hashes;
/// `description` renders it for people and may be reworded freely.
public enum ConditionFailure: Hashable, Sendable, CustomStringConvertible {
    /// A cas found the key at `actual` (0: absent), not `expected`.
    case versionMismatch(actual: UInt64, expected: UInt64)
    /// Guard `index` (from 0) of a transaction does not hold.
    case guardFailed(index: UInt32)
    /// An add would not apply.
    case add(AddFailure)
    /// Write `index` (from 0) of a transaction, an add, would not apply.
    case transactionAdd(index: UInt32, AddFailure)

    public var description: String {
        switch self {
        case let .versionMismatch(actual, expected): return "version is \(actual), expected \(expected)"
        case let .guardFailed(index): return "guard \(index) does not hold"
        case let .add(failure): return failure.description
        case let .transactionAdd(index, failure): return "write \(index): \(failure)"
        }
    }
}

/// Why an add would not apply.
public enum AddFailure: Hashable, Sendable, CustomStringConvertible {
    /// `min > max`: no balance could satisfy the bounds.
    case emptyBounds(min: Int64, max: Int64)
    /// The key holds a value of `bytes` bytes, not an 8-byte balance.
    case notABalance(bytes: UInt64)
    /// `balance + delta` does not fit in a signed 64-bit integer.
    case overflow(balance: Int64, delta: Int64)
    /// The new balance would be below the lower bound.
    case belowMinimum(balance: Int64, min: Int64)
    /// The new balance would be above the upper bound.
    case aboveMaximum(balance: Int64, max: Int64)
    /// An add by a caller without read on its key would not apply; why is not told.
    case withheld

    public var description: String {
        switch self {
        case let .emptyBounds(min, max): return "bounds are empty: min \(min) > max \(max)"
        case let .notABalance(bytes): return "value of \(bytes) bytes is not an 8-byte balance"
        case let .overflow(balance, delta): return "balance \(balance) + \(delta) would overflow"
        case let .belowMinimum(balance, min): return "balance \(balance) would fall below the minimum \(min)"
        case let .aboveMaximum(balance, max): return "balance \(balance) would exceed the maximum \(max)"
        case .withheld: return "the key cannot take this credit (why is withheld from a caller without read on it)"
        }
    }
}

/// Why the ledger refuses a request outright (SPEC.md §8.4): the configured limit it breaks.
public enum Rejection: Hashable, Sendable, CustomStringConvertible {
    case keyTooLong(bytes: UInt64, max: UInt64)
    case valueTooLong(bytes: UInt64, max: UInt64)
    case tooManyOperations(count: UInt64, max: UInt64)

    public var description: String {
        switch self {
        case let .keyTooLong(bytes, max): return "key of \(bytes) bytes exceeds keyBytesMax \(max)"
        case let .valueTooLong(bytes, max): return "value of \(bytes) bytes exceeds valueBytesMax \(max)"
        case let .tooManyOperations(count, max): return "transaction of \(count) operations exceeds txnOperationsMax \(max)"
        }
    }
}

extension ConditionFailure: CanonicalCodable {
    public func encode(to w: inout CanonicalWriter) {
        switch self {
        case let .versionMismatch(actual, expected): w.write(UInt8(1)); w.write(actual); w.write(expected)
        case let .guardFailed(index): w.write(UInt8(2)); w.write(index)
        case let .add(failure): w.write(UInt8(3)); w.write(failure)
        case let .transactionAdd(index, failure): w.write(UInt8(4)); w.write(index); w.write(failure)
        }
    }

    public init(from r: inout CanonicalReader) throws(CodecError) {
        let code = try r.readUInt8("condition code")
        switch code {
        case 1: self = .versionMismatch(actual: try r.readUInt64("actual version"), expected: try r.readUInt64("expected version"))
        case 2: self = .guardFailed(index: try r.readUInt32("guard index"))
        case 3: self = .add(try r.read(AddFailure.self))
        case 4: self = .transactionAdd(index: try r.readUInt32("write index"), try r.read(AddFailure.self))
        default: throw .unknownTag(type: "condition code", tag: code)
        }
    }
}

extension AddFailure: CanonicalCodable {
    public func encode(to w: inout CanonicalWriter) {
        switch self {
        case let .emptyBounds(min, max): w.write(UInt8(1)); w.write(min); w.write(max)
        case let .notABalance(bytes): w.write(UInt8(2)); w.write(bytes)
        case let .overflow(balance, delta): w.write(UInt8(3)); w.write(balance); w.write(delta)
        case let .belowMinimum(balance, min): w.write(UInt8(4)); w.write(balance); w.write(min)
        case let .aboveMaximum(balance, max): w.write(UInt8(5)); w.write(balance); w.write(max)
        case .withheld: w.write(UInt8(6))
        }
    }

    public init(from r: inout CanonicalReader) throws(CodecError) {
        let code = try r.readUInt8("add code")
        switch code {
        case 1: self = .emptyBounds(min: try r.readInt64("min"), max: try r.readInt64("max"))
        case 2: self = .notABalance(bytes: try r.readUInt64("value bytes"))
        case 3: self = .overflow(balance: try r.readInt64("balance"), delta: try r.readInt64("delta"))
        case 4: self = .belowMinimum(balance: try r.readInt64("balance"), min: try r.readInt64("min"))
        case 5: self = .aboveMaximum(balance: try r.readInt64("balance"), max: try r.readInt64("max"))
        case 6: self = .withheld
        default: throw .unknownTag(type: "add code", tag: code)
        }
    }
}

extension Rejection: CanonicalCodable {
    public func encode(to w: inout CanonicalWriter) {
        switch self {
        case let .keyTooLong(bytes, max): w.write(UInt8(1)); w.write(bytes); w.write(max)
        case let .valueTooLong(bytes, max): w.write(UInt8(2)); w.write(bytes); w.write(max)
        case let .tooManyOperations(count, max): w.write(UInt8(3)); w.write(count); w.write(max)
        }
    }

    public init(from r: inout CanonicalReader) throws(CodecError) {
        let code = try r.readUInt8("rejection code")
        switch code {
        case 1: self = .keyTooLong(bytes: try r.readUInt64("key bytes"), max: try r.readUInt64("keyBytesMax"))
        case 2: self = .valueTooLong(bytes: try r.readUInt64("value bytes"), max: try r.readUInt64("valueBytesMax"))
        case 3: self = .tooManyOperations(count: try r.readUInt64("operations"), max: try r.readUInt64("txnOperationsMax"))
        default: throw .unknownTag(type: "rejection code", tag: code)
        }
    }
}
