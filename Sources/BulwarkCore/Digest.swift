import CSodium

/// A SHA-256 digest.
public struct Digest: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var raw: Bytes32

    public static let byteCount = 32
    /// The all-zero digest; the `prevBlockHash` of height 1.
    public static let zero = Digest(raw: .zero)

    public init(raw: Bytes32) { self.raw = raw }
    public init?(_ bytes: some Collection<UInt8>) {
        guard let raw = Bytes32(bytes) else { return nil }
        self.raw = raw
    }
    public init?(hex: String) {
        guard let bytes = Hex.decode(hex), let raw = Bytes32(bytes) else { return nil }
        self.raw = raw
    }

    public var bytes: [UInt8] { raw.bytes }
    public var hex: String { raw.withUnsafeBytes { Hex.encode($0) } }
    public var description: String { hex }
    /// The first 8 hex digits, for logs.
    public var short: String { String(hex.prefix(8)) }

    @inlinable public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try raw.withUnsafeBytes(body)
    }

    public static func < (a: Digest, b: Digest) -> Bool { a.raw < b.raw }

    /// Plain SHA-256 of `bytes`, with no domain tag. Only RFC 6962 tree hashing, which has its
    /// own one-byte prefixes, and the tests use this directly.
    public static func sha256(_ bytes: UnsafeRawBufferPointer) -> Digest {
        Sodium.ensureReady()
        return Digest(raw: Bytes32 { out in
            _ = crypto_hash_sha256(out, bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(bytes.count))
        })
    }

    public static func sha256(_ bytes: [UInt8]) -> Digest {
        bytes.withUnsafeBytes { sha256($0) }
    }

    /// SHA-256 over `tag || clusterID || bytes` (see `Domain`): the hash of every hashed
    /// protocol object, so that one kind of object or one cluster's objects cannot stand in
    /// for another's.
    public static func tagged(_ tag: Domain, cluster: ClusterID, _ bytes: [UInt8]) -> Digest {
        var hasher = SHA256Hasher()
        hasher.update(tag.prefix)
        cluster.withUnsafeBytes { hasher.update($0) }
        hasher.update(bytes)
        return hasher.finalize()
    }
}

/// Incremental SHA-256, for hashing several buffers without concatenating them.
public struct SHA256Hasher {
    private var state = crypto_hash_sha256_state()

    public init() {
        Sodium.ensureReady()
        crypto_hash_sha256_init(&state)
    }

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress else { return }
        crypto_hash_sha256_update(&state, base.assumingMemoryBound(to: UInt8.self), UInt64(bytes.count))
    }

    public mutating func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    public mutating func update(_ digest: Digest) {
        digest.withUnsafeBytes { update($0) }
    }

    public mutating func finalize() -> Digest {
        var copy = state
        return Digest(raw: Bytes32 { out in _ = crypto_hash_sha256_final(&copy, out) })
    }
}
