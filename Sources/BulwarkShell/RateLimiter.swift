/// Token buckets by key: each key may spend `burst` at once and earns `perSecond` more each
/// second, and all keys together share one bucket of `totalPerSecond`. Bounded: past
/// `keysMax` keys the per-key buckets start over (the shared bucket still holds). The shell
/// uses it for requests that cost it reads or CPU and can be repeated at will: state-transfer
/// requests per peer, proof requests per client.
struct RateLimiter<Key: Hashable> {
    let perSecond: UInt64
    let burst: UInt64
    let totalPerSecond: UInt64
    let keysMax: Int
    /// Tokens are counted in thousandths so that refills stay integers at any rate.
    private var buckets: [Key: (milliTokens: UInt64, atMs: UInt64)] = [:]
    private var total: (milliTokens: UInt64, atMs: UInt64)

    init(perSecond: UInt64, burst: UInt64, totalPerSecond: UInt64, keysMax: Int = 4096) {
        self.perSecond = perSecond
        self.burst = burst
        self.totalPerSecond = totalPerSecond
        self.keysMax = keysMax
        total = (totalPerSecond * 1000, 0)
    }

    /// Spends one token of `key` and one of the shared bucket if both have one.
    mutating func allow(_ key: Key, nowMs: UInt64) -> Bool {
        if buckets.count >= keysMax, buckets[key] == nil { buckets.removeAll(keepingCapacity: true) }
        var own = Self.refilled(buckets[key] ?? (burst * 1000, nowMs), nowMs: nowMs, perSecond: perSecond, capacity: burst)
        total = Self.refilled(total, nowMs: nowMs, perSecond: totalPerSecond, capacity: totalPerSecond)
        guard own.milliTokens >= 1000, total.milliTokens >= 1000 else {
            buckets[key] = own
            return false
        }
        own.milliTokens -= 1000
        total.milliTokens -= 1000
        buckets[key] = own
        return true
    }

    /// `bucket` refilled for the time since it was last touched (a clock that went back adds nothing).
    static func refilled(_ bucket: (milliTokens: UInt64, atMs: UInt64), nowMs: UInt64, perSecond: UInt64,
                         capacity: UInt64) -> (milliTokens: UInt64, atMs: UInt64) {
        let elapsedMs = nowMs > bucket.atMs ? min(nowMs - bucket.atMs, 3_600_000) : 0
        return (min(capacity * 1000, bucket.milliTokens + elapsedMs * perSecond), max(nowMs, bucket.atMs))
    }
}
