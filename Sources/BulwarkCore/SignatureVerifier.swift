import Foundation

/// Verifies Ed25519 signatures and remembers the ones that were valid, so that a process never
/// verifies the same signature twice (a retransmitted message, a certificate seen again inside
/// a view change). The answer is exactly what `PublicKey.isValidSignature` says, so caching
/// cannot change any decision. Safe to share between threads.
public final class SignatureVerifier: @unchecked Sendable {
    // Guarded by `lock` (a pthread mutex, which thread sanitizers understand).
    private let lock = NSLock()
    private var verified: Set<Digest> = []
    private var stats: (hits: UInt64, verifications: UInt64) = (0, 0)
    private let capacity: Int

    /// `capacity` bounds memory: when the cache is full it is cleared and refills.
    public init(capacity: Int = 1 << 18) {
        self.capacity = capacity
    }

    public func isValid(_ signature: Signature, by key: PublicKey, for message: [UInt8]) -> Bool {
        var h = SHA256Hasher()
        key.raw.withUnsafeBytes { h.update($0) }
        signature.raw.withUnsafeBytes { h.update($0) }
        h.update(message)
        let fingerprint = h.finalize()
        let known = lock.withLock {
            let known = verified.contains(fingerprint)
            if known { stats.hits += 1 } else { stats.verifications += 1 }
            return known
        }
        if known { return true }
        guard key.isValidSignature(signature, for: message) else { return false }
        lock.withLock {
            if verified.count >= capacity { verified.removeAll(keepingCapacity: true) }
            verified.insert(fingerprint)
        }
        return true
    }

    /// (signatures answered from the cache, signatures verified).
    public var counts: (hits: UInt64, verifications: UInt64) { lock.withLock { stats } }
}
