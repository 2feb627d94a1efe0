import CSodium

/// libsodium must be initialised once per process before any other call; `sodium_init` is
/// itself idempotent and thread-safe, so a lazily evaluated global is enough.
public enum Sodium {
    static let ready: Bool = {
        let status = sodium_init()
        // 0 = initialised now, 1 = already initialised; -1 means libsodium cannot work at all.
        precondition(status >= 0, "libsodium failed to initialise")
        return true
    }()

    /// Initialises libsodium if this process has not yet; every caller of libsodium first.
    public static func ensureReady() { _ = ready }
}

/// Cryptographically secure random bytes from the operating system (via libsodium).
/// Only key generation and cluster-id generation use this; the consensus core and the
/// state machine never draw randomness.
public enum SecureRandom {
    public static func bytes(_ count: Int) -> [UInt8] {
        Sodium.ensureReady()
        var out = [UInt8](repeating: 0, count: count)
        out.withUnsafeMutableBytes { randombytes_buf($0.baseAddress!, $0.count) }
        return out
    }
}
