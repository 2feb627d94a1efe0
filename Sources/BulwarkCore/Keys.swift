import CSodium

/// An Ed25519 public key.
public struct PublicKey: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var raw: Bytes32
    public static let byteCount = 32

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
    public var short: String { String(hex.prefix(8)) }
    public static func < (a: PublicKey, b: PublicKey) -> Bool { a.raw < b.raw }

    /// Verifies an Ed25519 signature over exactly `message`.
    ///
    /// libsodium's verifier is strict: it rejects S ≥ L (malleable signatures), non-canonical
    /// and small-order R and public keys. All replicas run the same check, so they never
    /// disagree on which signatures are valid (PITFALLS: "Ed25519 validity not specified").
    public func isValidSignature(_ signature: Signature, for message: UnsafeRawBufferPointer) -> Bool {
        Sodium.ensureReady()
        return signature.raw.withUnsafeBytes { sig in
            raw.withUnsafeBytes { pk in
                crypto_sign_verify_detached(
                    sig.baseAddress!.assumingMemoryBound(to: UInt8.self),
                    message.baseAddress?.assumingMemoryBound(to: UInt8.self),
                    UInt64(message.count),
                    pk.baseAddress!.assumingMemoryBound(to: UInt8.self)) == 0
            }
        }
    }

    public func isValidSignature(_ signature: Signature, for message: [UInt8]) -> Bool {
        message.withUnsafeBytes { isValidSignature(signature, for: $0) }
    }

    /// Verifies a signature made with `PrivateKey.sign(_:cluster:body:)` in the same domain.
    public func isValidSignature(
        _ signature: Signature, domain: Domain, cluster: ClusterID, body: (inout CanonicalWriter) -> Void
    ) -> Bool {
        isValidSignature(signature, for: domain.message(cluster: cluster, body: body))
    }
}

/// An Ed25519 signature (R || S).
public struct Signature: Hashable, Sendable, CustomStringConvertible {
    public var raw: Bytes64
    public static let byteCount = 64
    public static let zero = Signature(raw: .zero)

    public init(raw: Bytes64) { self.raw = raw }
    public init?(_ bytes: some Collection<UInt8>) {
        guard let raw = Bytes64(bytes) else { return nil }
        self.raw = raw
    }

    public var bytes: [UInt8] { raw.bytes }
    public var description: String { raw.withUnsafeBytes { Hex.encode($0) } }
}

/// An Ed25519 private key. The secret lives in libsodium's guarded memory, is zeroed when the
/// key is released, and never appears in `description`, `debugDescription` or reflection.
public final class PrivateKey: @unchecked Sendable, CustomStringConvertible, CustomDebugStringConvertible,
    CustomReflectable
{
    // Immutable after init, so sharing across threads is safe.
    private let secret: UnsafeMutablePointer<UInt8>  // crypto_sign_SECRETKEYBYTES: seed || public key
    public let publicKey: PublicKey

    public static let seedByteCount = 32

    /// Derives the key pair from a 32-byte seed. Returns nil for any other length.
    public init?(seed: some Collection<UInt8>) {
        guard seed.count == Self.seedByteCount else { return nil }
        Sodium.ensureReady()
        let seedBytes = Array(seed)
        guard let memory = sodium_malloc(Int(crypto_sign_SECRETKEYBYTES)) else { return nil }
        let secretPointer = memory.assumingMemoryBound(to: UInt8.self)
        let pk = Bytes32 { out in _ = crypto_sign_seed_keypair(out, secretPointer, seedBytes) }
        secret = secretPointer
        publicKey = PublicKey(raw: pk)
    }

    /// A new key from the operating system's secure random source.
    public static func generate() -> PrivateKey {
        var seed = SecureRandom.bytes(seedByteCount)
        defer { sodium_memzero(&seed, seed.count) }
        return PrivateKey(seed: seed)!
    }

    deinit {
        // sodium_free zeroes the memory before releasing it.
        sodium_free(secret)
    }

    /// The 32-byte seed, for writing the key file only.
    public func seedForKeyFile() -> [UInt8] {
        Array(UnsafeBufferPointer(start: secret, count: Self.seedByteCount))
    }

    public func sign(_ message: UnsafeRawBufferPointer) -> Signature {
        Signature(raw: Bytes64 { out in
            _ = crypto_sign_detached(
                out, nil, message.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(message.count), secret)
        })
    }

    public func sign(_ message: [UInt8]) -> Signature {
        message.withUnsafeBytes { sign($0) }
    }

    /// Signs `domain.prefix || clusterID || body`.
    public func sign(_ domain: Domain, cluster: ClusterID, body: (inout CanonicalWriter) -> Void) -> Signature {
        sign(domain.message(cluster: cluster, body: body))
    }

    public var description: String { "PrivateKey(public: \(publicKey.short)…, secret: <redacted>)" }
    public var debugDescription: String { description }
    public var customMirror: Mirror { Mirror(self, children: ["publicKey": publicKey]) }
}
