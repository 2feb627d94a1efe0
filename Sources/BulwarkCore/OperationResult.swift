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
    case history([KeyValueState.HistoryEntry])
    /// A cas, add or transaction whose condition did not hold; nothing was written.
    case conditionFailed(String)
    /// A request the ledger refuses (over a size limit, malformed); nothing was written.
    case rejected(String)
    /// A read that already executed, retransmitted: the ledger keeps no read's result (reads
    /// change nothing, so exactly-once does not need it, and keeping it would let free client
    /// keys inflate the state). The client asks again under a new request id.
    case notKept

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
        case .conditionFailed, .rejected: return true
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
        case let .conditionFailed(reason): w.write(UInt8(6)); w.write(reason)
        case let .rejected(reason): w.write(UInt8(7)); w.write(reason)
        case let .history(entries): w.write(UInt8(8)); w.write(entries)
        case .notKept: w.write(UInt8(9))
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
        case 6: self = .conditionFailed(try r.readString("reason", max: 1024))
        case 7: self = .rejected(try r.readString("reason", max: 1024))
        case 8: self = .history(try r.readArray(KeyValueState.HistoryEntry.self, "history", max: 1 << 20))
        case 9: self = .notKept
        default: throw .unknownTag(type: "result", tag: tag)
        }
    }
}

extension KeyValueState.HistoryEntry: CanonicalCodable {
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
