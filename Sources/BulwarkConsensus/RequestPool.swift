import BulwarkCore

/// Client requests waiting to be ordered, in arrival order. Bounded in total and per client so
/// that a flooding client cannot crowd out the others.
struct RequestPool: Sendable {
    struct Key: Hashable, Sendable {
        var client: PublicKey
        var requestID: UInt64
    }

    struct Entry: Sendable {
        var request: Request
        var arrivalMs: UInt64
        /// Encoded size, counted once.
        var bytes: Int
        /// Its position in `order`: a key removed and added again stands in `order` twice, and
        /// only the position with its current sequence number counts.
        var sequence: UInt64
    }

    struct Position: Sendable {
        var key: Key
        var sequence: UInt64
    }

    let capacity: Int
    let perClientMax: Int
    /// Arrival order; removed entries stay behind (stale) until `compact` squeezes them out.
    private var order: [Position] = []
    private var nextSequence: UInt64 = 0
    private var entries: [Key: Entry] = [:]
    private var perClient: [PublicKey: Int] = [:]
    /// Keys already placed in a proposal of the current view (primary only).
    private var proposed: Set<Key> = []
    /// Keys a backup relayed to the current view's primary.
    private var relayed: Set<Key> = []

    init(capacity: Int, perClientMax: Int) {
        self.capacity = capacity
        self.perClientMax = perClientMax
    }

    var count: Int { entries.count }
    var isEmpty: Bool { entries.isEmpty }
    func contains(_ key: Key) -> Bool { entries[key] != nil }

    enum AddResult { case added, duplicate, full, clientFull }

    mutating func add(_ request: Request, bytes: Int, nowMs: UInt64) -> AddResult {
        let key = Key(client: request.client, requestID: request.requestID)
        if entries[key] != nil { return .duplicate }
        if entries.count >= capacity { return .full }
        if perClient[request.client, default: 0] >= perClientMax { return .clientFull }
        nextSequence += 1
        entries[key] = Entry(request: request, arrivalMs: nowMs, bytes: bytes, sequence: nextSequence)
        perClient[request.client, default: 0] += 1
        order.append(Position(key: key, sequence: nextSequence))
        return .added
    }

    mutating func remove(_ key: Key) {
        guard entries.removeValue(forKey: key) != nil else { return }
        proposed.remove(key)
        relayed.remove(key)
        let left = perClient[key.client, default: 1] - 1
        perClient[key.client] = left == 0 ? nil : left
        if order.count > 2 * entries.count + 64 { compact() }
    }

    /// Removes every request of `client` with an id at or below `requestID` (executed).
    mutating func removeExecuted(client: PublicKey, upTo requestID: UInt64) {
        guard perClient[client] != nil else { return }
        let done = order.filter { $0.key.client == client && $0.key.requestID <= requestID }.map(\.key)
        for key in done { remove(key) }
    }

    /// Drops every pending request the state already executed (after a state transfer).
    mutating func removeExecuted(by executed: ExecutedClients) {
        let done = order.compactMap { position -> Key? in
            guard current(position) != nil, let last = executed.lastRequestID(of: position.key.client),
                  position.key.requestID <= last else { return nil }
            return position.key
        }
        for key in done { remove(key) }
    }

    /// The entry at a position of `order`, unless that position is stale.
    private func current(_ position: Position) -> Entry? {
        guard let entry = entries[position.key], entry.sequence == position.sequence else { return nil }
        return entry
    }

    private mutating func compact() { order = order.filter { current($0) != nil } }

    /// The arrival time of the oldest request, if any.
    var oldestArrivalMs: UInt64? {
        for position in order { if let entry = current(position) { return entry.arrivalMs } }
        return nil
    }

    /// Requests not yet proposed, oldest first, up to the batch limits.
    func unproposed(maxCount: Int, maxBytes: Int) -> [Entry] {
        var out: [Entry] = []
        var bytes = 0
        for position in order {
            guard let entry = current(position), !proposed.contains(position.key) else { continue }
            if !out.isEmpty && bytes + entry.bytes > maxBytes { break }
            out.append(entry)
            bytes += entry.bytes
            if out.count == maxCount { break }
        }
        return out
    }

    var unproposedCount: Int { entries.count - proposed.count }

    /// Every pending request, oldest first.
    var requests: [Request] { order.compactMap { current($0)?.request } }

    /// Marks `requests` proposed in this view; returns how long each one this pool held and had
    /// not seen proposed yet waited since it arrived, or since `since` if later (the primary's
    /// turnaround, for backups).
    @discardableResult
    mutating func markProposed(_ requests: [Request], nowMs: UInt64, since: UInt64 = 0) -> [UInt64] {
        var waits: [UInt64] = []
        for r in requests {
            let key = Key(client: r.client, requestID: r.requestID)
            guard let entry = entries[key], proposed.insert(key).inserted else { continue }
            let from = max(entry.arrivalMs, since)
            waits.append(nowMs > from ? nowMs - from : 0)
        }
        return waits
    }

    /// Requests that arrived at or before `cutoffMs`, were not seen proposed in this view and
    /// were not relayed to its primary yet, oldest first and at most `maxCount`. They count as
    /// relayed from now on.
    mutating func takeUnrelayed(arrivedBy cutoffMs: UInt64, maxCount: Int) -> [Request] {
        var out: [Request] = []
        for position in order where out.count < maxCount {
            guard let entry = current(position), entry.arrivalMs <= cutoffMs, !proposed.contains(position.key),
                  relayed.insert(position.key).inserted else { continue }
            out.append(entry.request)
        }
        return out
    }

    /// After a view change nothing is proposed or relayed yet, and every request starts a
    /// fresh wait.
    mutating func resetForNewView(nowMs: UInt64) {
        proposed.removeAll()
        relayed.removeAll()
        for key in entries.keys { entries[key]!.arrivalMs = nowMs }
    }
}
