import Synchronization

/// Verifies Ed25519 signatures and remembers the ones that were valid, so that a process never
/// verifies the same signature twice (a retransmitted message, a certificate seen again inside
/// a view change). The answer is exactly what `PublicKey.isValidSignature` says, so caching
/// cannot change any decision. Safe to share between threads.
public final class SignatureVerifier: Sendable {
    private let verified: Mutex<Set<Digest>>
    private let capacity: Int
    private let stats = Mutex<(hits: UInt64, verifications: UInt64)>((0, 0))

    /// `capacity` bounds memory: when the cache is full it is cleared and refills.
    public init(capacity: Int = 1 << 18) {
        self.capacity = capacity
        self.verified = Mutex([])
    }

    public func isValid(_ signature: Signature, by key: PublicKey, for message: [UInt8]) -> Bool {
        var h = SHA256Hasher()
        key.raw.withUnsafeBytes { h.update($0) }
        signature.raw.withUnsafeBytes { h.update($0) }
        h.update(message)
        let fingerprint = h.finalize()
        if verified.withLock({ $0.contains(fingerprint) }) {
            stats.withLock { $0.hits += 1 }
            return true
        }
        stats.withLock { $0.verifications += 1 }
        guard key.isValidSignature(signature, for: message) else { return false }
        verified.withLock { set in
            if set.count >= capacity { set.removeAll(keepingCapacity: true) }
            set.insert(fingerprint)
        }
        return true
    }

    /// (signatures answered from the cache, signatures verified).
    public var counts: (hits: UInt64, verifications: UInt64) { stats.withLock { $0 } }
}
