/// Fixed-size byte strings stored inline (no heap allocation, no reference counting), so that
/// digests, keys and signatures are cheap to copy, compare and hash. Tuples of UInt64 have a
/// guaranteed contiguous layout, which lets `withUnsafeBytes` expose them as raw bytes.

public struct Bytes32: Hashable, Sendable, Comparable {
    @usableFromInline var storage: (UInt64, UInt64, UInt64, UInt64)

    public static let byteCount = 32
    public static let zero = Bytes32(storage: (0, 0, 0, 0))

    @usableFromInline init(storage: (UInt64, UInt64, UInt64, UInt64)) { self.storage = storage }

    /// Returns nil unless `bytes` has exactly 32 elements.
    public init?(_ bytes: some Collection<UInt8>) {
        guard bytes.count == Self.byteCount else { return nil }
        var value = Bytes32.zero
        withUnsafeMutableBytes(of: &value.storage) { raw in
            let copied: Void? = bytes.withContiguousStorageIfAvailable { raw.copyMemory(from: UnsafeRawBufferPointer($0)) }
            if copied == nil { for (i, b) in bytes.enumerated() { raw[i] = b } }
        }
        self = value
    }

    /// Fills the value through a pointer to its 32 bytes (for C APIs that write output).
    @inlinable public init(unsafeUninitializedWith body: (UnsafeMutablePointer<UInt8>) -> Void) {
        var value = Bytes32.zero
        withUnsafeMutableBytes(of: &value.storage) { body($0.baseAddress!.assumingMemoryBound(to: UInt8.self)) }
        self = value
    }

    @inlinable public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try Swift.withUnsafeBytes(of: storage) { try body($0) }
    }

    public var bytes: [UInt8] { withUnsafeBytes { Array($0) } }

    public static func == (a: Bytes32, b: Bytes32) -> Bool {
        a.storage.0 == b.storage.0 && a.storage.1 == b.storage.1
            && a.storage.2 == b.storage.2 && a.storage.3 == b.storage.3
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(storage.0); hasher.combine(storage.1)
        hasher.combine(storage.2); hasher.combine(storage.3)
    }

    /// Lexicographic byte order (not the order of the UInt64 words), so sorting by it is
    /// the same on every platform.
    public static func < (a: Bytes32, b: Bytes32) -> Bool {
        a.withUnsafeBytes { ra in b.withUnsafeBytes { rb in ra.lexicographicallyPrecedes(rb) } }
    }
}

public struct Bytes64: Hashable, Sendable {
    @usableFromInline var storage: (Bytes32, Bytes32)

    public static let byteCount = 64
    public static let zero = Bytes64(storage: (.zero, .zero))

    @usableFromInline init(storage: (Bytes32, Bytes32)) { self.storage = storage }

    public init?(_ bytes: some Collection<UInt8>) {
        guard bytes.count == Self.byteCount else { return nil }
        var value = Bytes64.zero
        withUnsafeMutableBytes(of: &value.storage) { raw in
            let copied: Void? = bytes.withContiguousStorageIfAvailable { raw.copyMemory(from: UnsafeRawBufferPointer($0)) }
            if copied == nil { for (i, b) in bytes.enumerated() { raw[i] = b } }
        }
        self = value
    }

    @inlinable public init(unsafeUninitializedWith body: (UnsafeMutablePointer<UInt8>) -> Void) {
        var value = Bytes64.zero
        withUnsafeMutableBytes(of: &value.storage) { body($0.baseAddress!.assumingMemoryBound(to: UInt8.self)) }
        self = value
    }

    @inlinable public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try Swift.withUnsafeBytes(of: storage) { try body($0) }
    }

    public var bytes: [UInt8] { withUnsafeBytes { Array($0) } }

    public static func == (a: Bytes64, b: Bytes64) -> Bool {
        a.storage.0 == b.storage.0 && a.storage.1 == b.storage.1
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(storage.0); hasher.combine(storage.1)
    }
}
