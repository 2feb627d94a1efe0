/// The canonical binary codec (ARCHITECTURE.md §2).
///
/// Little-endian fixed-width integers; byte strings and arrays are prefixed by a UInt32 length
/// or count; enums by a one-byte tag; booleans are exactly 0 or 1; sets are written sorted
/// and strictly increasing. Each value therefore has exactly one encoding, and the decoder
/// rejects every other byte string with a typed error: it never traps, and it checks every
/// length against a bound before allocating.

public enum CodecError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The input ended `needed` bytes early while reading `field`.
    case truncated(field: String, needed: Int, remaining: Int)
    /// A length or count is larger than the bound for `field`.
    case tooLarge(field: String, length: Int, max: Int)
    /// Bytes were left over after a complete value.
    case trailingBytes(count: Int)
    /// An enum tag no version of the codec defines.
    case unknownTag(type: String, tag: UInt8)
    /// A format version this build does not understand.
    case unsupportedVersion(type: String, version: UInt8)
    /// A field holds a value its type forbids (a boolean that is neither 0 nor 1, a set that
    /// is not strictly increasing, invalid UTF-8, ...).
    case invalidValue(field: String, reason: String)

    public var description: String {
        switch self {
        case let .truncated(field, needed, remaining):
            return "input ends early in \(field): needs \(needed) bytes, \(remaining) left"
        case let .tooLarge(field, length, max):
            return "\(field) is \(length), above the limit of \(max)"
        case let .trailingBytes(count):
            return "\(count) unexpected bytes after the end of the value"
        case let .unknownTag(type, tag):
            return "unknown \(type) tag \(tag)"
        case let .unsupportedVersion(type, version):
            return "unsupported \(type) format version \(version)"
        case let .invalidValue(field, reason):
            return "invalid \(field): \(reason)"
        }
    }
}

/// Absolute bounds the decoder enforces before allocating. Cluster configuration sets tighter,
/// operator-chosen limits (`ProtocolParameters`); these only stop a hostile length prefix from
/// allocating gigabytes.
public enum CodecLimits {
    public static let keyBytesMax = 4 * 1024
    public static let valueBytesMax = 4 * 1024 * 1024
    public static let operationsMax = 4 * 1024
    public static let requestsPerBlockMax = 64 * 1024
    public static let votesMax = 1024
    public static let bytesMax = 64 * 1024 * 1024
}

public struct CanonicalWriter {
    public private(set) var bytes: [UInt8]

    public init(capacity: Int = 256) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    mutating func appendLittleEndian<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    public mutating func write(_ value: UInt8) { bytes.append(value) }
    public mutating func write(_ value: UInt16) { appendLittleEndian(value) }
    public mutating func write(_ value: UInt32) { appendLittleEndian(value) }
    public mutating func write(_ value: UInt64) { appendLittleEndian(value) }
    public mutating func write(_ value: Int64) { appendLittleEndian(value) }
    public mutating func write(_ value: Bool) { bytes.append(value ? 1 : 0) }

    /// Bytes with no length prefix (fixed-size fields, prefixes).
    public mutating func writeRaw(_ raw: UnsafeRawBufferPointer) { bytes.append(contentsOf: raw) }
    public mutating func writeRaw(_ raw: [UInt8]) { bytes.append(contentsOf: raw) }

    /// A UInt32 length, then the bytes.
    public mutating func writeBytes(_ value: [UInt8]) {
        precondition(value.count <= UInt32.max, "byte string too long to encode")
        write(UInt32(value.count))
        bytes.append(contentsOf: value)
    }

    public mutating func write(_ value: String) { writeBytes(Array(value.utf8)) }
    public mutating func write(_ value: Digest) { value.withUnsafeBytes { writeRaw($0) } }
    public mutating func write(_ value: PublicKey) { value.raw.withUnsafeBytes { writeRaw($0) } }
    public mutating func write(_ value: Signature) { value.raw.withUnsafeBytes { writeRaw($0) } }
    public mutating func write(_ value: ClusterID) { value.withUnsafeBytes { writeRaw($0) } }
    public mutating func write(_ value: Bytes32) { value.withUnsafeBytes { writeRaw($0) } }

    public mutating func write<T: CanonicalCodable>(_ value: T) { value.encode(to: &self) }

    /// A UInt32 count, then each element.
    public mutating func write<T: CanonicalCodable>(_ values: [T]) {
        write(UInt32(values.count))
        for value in values { value.encode(to: &self) }
    }

    public mutating func write<T: CanonicalCodable>(optional value: T?) {
        if let value {
            write(true)
            value.encode(to: &self)
        } else {
            write(false)
        }
    }
}

public struct CanonicalReader {
    let input: [UInt8]
    var offset: Int

    public init(_ input: [UInt8]) {
        self.input = input
        self.offset = 0
    }

    public var remaining: Int { input.count - offset }
    public var isAtEnd: Bool { offset == input.count }

    mutating func take(_ count: Int, _ field: String) throws(CodecError) -> Range<Int> {
        guard count <= remaining else {
            throw .truncated(field: field, needed: count, remaining: remaining)
        }
        let range = offset..<(offset + count)
        offset += count
        return range
    }

    mutating func readLittleEndian<T: FixedWidthInteger>(_: T.Type, _ field: String) throws(CodecError) -> T {
        let range = try take(MemoryLayout<T>.size, field)
        var value: T = 0
        for i in range.reversed() { value = value << 8 | T(input[i]) }
        return value
    }

    public mutating func readUInt8(_ field: String) throws(CodecError) -> UInt8 {
        input[try take(1, field).lowerBound]
    }
    public mutating func readUInt16(_ field: String) throws(CodecError) -> UInt16 { try readLittleEndian(UInt16.self, field) }
    public mutating func readUInt32(_ field: String) throws(CodecError) -> UInt32 { try readLittleEndian(UInt32.self, field) }
    public mutating func readUInt64(_ field: String) throws(CodecError) -> UInt64 { try readLittleEndian(UInt64.self, field) }
    public mutating func readInt64(_ field: String) throws(CodecError) -> Int64 {
        Int64(bitPattern: try readLittleEndian(UInt64.self, field))
    }

    public mutating func readBool(_ field: String) throws(CodecError) -> Bool {
        switch try readUInt8(field) {
        case 0: return false
        case 1: return true
        case let other: throw .invalidValue(field: field, reason: "boolean byte \(other) is neither 0 nor 1")
        }
    }

    public mutating func readRaw(_ count: Int, _ field: String) throws(CodecError) -> ArraySlice<UInt8> {
        input[try take(count, field)]
    }

    /// A UInt32 length (checked against `max` before anything is allocated), then the bytes.
    public mutating func readBytes(_ field: String, max: Int) throws(CodecError) -> [UInt8] {
        // The field's name is built only for an error: this runs for every field decoded.
        let length = Int(remaining >= 4 ? try readUInt32(field) : try readUInt32("\(field) length"))
        guard length <= max else { throw .tooLarge(field: "\(field) length", length: length, max: max) }
        return Array(input[try take(length, field)])
    }

    public mutating func readString(_ field: String, max: Int) throws(CodecError) -> String {
        let raw = try readBytes(field, max: max)
        guard let text = String(validating: raw, as: UTF8.self) else {
            throw .invalidValue(field: field, reason: "not valid UTF-8")
        }
        return text
    }

    public mutating func readDigest(_ field: String) throws(CodecError) -> Digest {
        Digest(try readRaw(Digest.byteCount, field))!
    }
    public mutating func readPublicKey(_ field: String) throws(CodecError) -> PublicKey {
        PublicKey(try readRaw(PublicKey.byteCount, field))!
    }
    public mutating func readSignature(_ field: String) throws(CodecError) -> Signature {
        Signature(try readRaw(Signature.byteCount, field))!
    }
    public mutating func readClusterID(_ field: String) throws(CodecError) -> ClusterID {
        ClusterID(raw: try readBytes32(field))
    }
    public mutating func readBytes32(_ field: String) throws(CodecError) -> Bytes32 {
        Bytes32(try readRaw(32, field))!
    }

    public mutating func read<T: CanonicalCodable>(_: T.Type) throws(CodecError) -> T {
        try T(from: &self)
    }

    /// A UInt32 count (checked against `max`), then each element.
    public mutating func readArray<T: CanonicalCodable>(_: T.Type, _ field: String, max: Int) throws(CodecError) -> [T] {
        let count = Int(remaining >= 4 ? try readUInt32(field) : try readUInt32("\(field) count"))
        guard count <= max else { throw .tooLarge(field: "\(field) count", length: count, max: max) }
        // Every element takes at least one byte, so a count beyond the remaining input is
        // certainly truncated; checking here keeps reserveCapacity honest.
        guard count <= remaining else {
            throw .truncated(field: field, needed: count, remaining: remaining)
        }
        var out: [T] = []
        out.reserveCapacity(count)
        for _ in 0..<count { out.append(try T(from: &self)) }
        return out
    }

    public mutating func readOptional<T: CanonicalCodable>(_: T.Type, _ field: String) throws(CodecError) -> T? {
        try readBool("\(field) present") ? try T(from: &self) : nil
    }

    public mutating func readVersion(_ type: String, supported: UInt8) throws(CodecError) {
        let version = remaining >= 1 ? try readUInt8(type) : try readUInt8("\(type) version")
        guard version == supported else { throw .unsupportedVersion(type: type, version: version) }
    }

    /// Throws unless every byte has been consumed.
    public func finish() throws(CodecError) {
        guard isAtEnd else { throw .trailingBytes(count: remaining) }
    }
}

/// A type with exactly one canonical binary encoding.
public protocol CanonicalCodable: Sendable {
    func encode(to writer: inout CanonicalWriter)
    init(from reader: inout CanonicalReader) throws(CodecError)
}

extension CanonicalCodable {
    public func encoded() -> [UInt8] {
        var writer = CanonicalWriter()
        encode(to: &writer)
        return writer.bytes
    }

    /// Decodes a whole byte string: truncated input and trailing bytes are both errors.
    public init(decoding bytes: [UInt8]) throws(CodecError) {
        var reader = CanonicalReader(bytes)
        self = try Self(from: &reader)
        try reader.finish()
    }
}
