import Foundation

/// Where a state keeps every version of every key (ARCHITECTURE.md §2: each key keeps its history).
///
/// Histories grow with every write, so a replica keeps them in a file rather than in memory
/// (`FileKeyHistory` in BulwarkStorage); the state holds only each key's newest position. A
/// store only grows: copies of a state share one store, and each reads only the entries its
/// own positions reach. Entries of one key form a chain from the newest back to the oldest.
public protocol KeyHistoryStore: AnyObject, Sendable {
    /// The position the next entry gets.
    var end: UInt64 { get }
    /// Stores `entry`, whose key's newest entry so far is at `previous`; returns its position.
    func append(_ entry: KeyValueState.HistoryEntry, previous: UInt64?) -> UInt64
    /// The entry at `position` and the position of its key's entry before it, which is always
    /// lower (a store that cannot show that throws rather than answer).
    func read(at position: UInt64) throws(KeyHistoryError) -> (entry: KeyValueState.HistoryEntry, previous: UInt64?)
}

/// A history entry could not be read: the store is damaged or its device failed. The state
/// cannot execute on without it.
public struct KeyHistoryError: Error, Equatable, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Histories in memory: for tests, the simulator and offline replays. Positions are indices.
public final class MemoryKeyHistory: KeyHistoryStore, @unchecked Sendable {
    // Guarded by `lock`.
    private let lock = NSLock()
    private var entries: [(entry: KeyValueState.HistoryEntry, previous: UInt64?)] = []

    public init() {}

    public var end: UInt64 { lock.withLock { UInt64(entries.count) } }

    public func append(_ entry: KeyValueState.HistoryEntry, previous: UInt64?) -> UInt64 {
        lock.withLock {
            precondition(previous.map { $0 < UInt64(entries.count) } ?? true, "a history chain points forward")
            entries.append((entry, previous))
            return UInt64(entries.count - 1)
        }
    }

    public func read(at position: UInt64) throws(KeyHistoryError) -> (entry: KeyValueState.HistoryEntry, previous: UInt64?) {
        let found = lock.withLock { position < UInt64(entries.count) ? entries[Int(position)] : nil }
        guard let found else { throw KeyHistoryError("no history entry at position \(position)") }
        return found
    }
}

extension KeyValueState {
    /// The newest versions of `key`, oldest first: at most `limit`, and stopping before the
    /// entry whose value would take the total past `bytesMax` (it always holds at least one).
    public func history(of key: [UInt8], limit: Int = .max, bytesMax: Int = .max) throws(KeyHistoryError) -> [HistoryEntry] {
        var newest: [HistoryEntry] = []
        var bytes = 0
        var next = historyHeads[key]
        while let position = next, newest.count < limit {
            let (entry, previous) = try historyStore.read(at: position)
            bytes += entry.value?.count ?? 0
            if bytes > bytesMax, !newest.isEmpty { break }
            newest.append(entry)
            next = previous
        }
        return newest.reversed()
    }

}
