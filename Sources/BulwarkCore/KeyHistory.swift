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
    func append(_ entry: KeyHistoryEntry, previous: UInt64?) -> UInt64
    /// The entry at `position` and the position of its key's entry before it, which is always
    /// lower (a store that cannot show that throws rather than answer).
    func read(at position: UInt64) throws(KeyHistoryError) -> (entry: KeyHistoryEntry, previous: UInt64?)
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
    private var entries: [(entry: KeyHistoryEntry, previous: UInt64?)] = []

    public init() {}

    public var end: UInt64 { lock.withLock { UInt64(entries.count) } }

    public func append(_ entry: KeyHistoryEntry, previous: UInt64?) -> UInt64 {
        lock.withLock {
            precondition(previous.map { $0 < UInt64(entries.count) } ?? true, "a history chain points forward")
            entries.append((entry, previous))
            return UInt64(entries.count - 1)
        }
    }

    public func read(at position: UInt64) throws(KeyHistoryError) -> (entry: KeyHistoryEntry, previous: UInt64?) {
        let found = lock.withLock { position < UInt64(entries.count) ? entries[Int(position)] : nil }
        guard let found else { throw KeyHistoryError("no history entry at position \(position)") }
        return found
    }
}


/// One version of a key: its value from `height` on, nil where it was deleted.
public struct KeyHistoryEntry: Hashable, Sendable {
    public var height: Height
    public var value: [UInt8]?

    public init(height: Height, value: [UInt8]?) {
        self.height = height
        self.value = value
    }
}

/// The hashes a state root is made of (SPEC.md §9), which an offline proof check recomputes
/// without the state machine.
public enum StateHashing {
    /// A record's key in the authenticated map.
    public static func recordKeyHash(_ key: [UInt8]) -> Digest {
        var h = SHA256Hasher()
        h.update([1])
        h.update(key)
        return h.finalize()
    }

    /// A record's value and version as the map holds them.
    public static func recordValueHash(value: [UInt8], version: UInt64) -> Digest {
        var w = CanonicalWriter(capacity: value.count + 16)
        w.writeBytes(value)
        w.write(version)
        return Digest.sha256(w.bytes)
    }

    /// The map entry that holds the replicated configuration: key hash SHA-256(0x03).
    public static let governanceKeyHash = Digest.sha256([3])

    public static func governanceValueHash(_ governance: Governance) -> Digest {
        Digest.tagged(.governance, cluster: governance.config.clusterID, governance.encoded())
    }

    /// The state root after `height`, over the map's root.
    public static func stateRoot(cluster: ClusterID, height: Height, mapRoot: Digest) -> Digest {
        Digest.sha256(Domain.state.message(cluster: cluster) { w in
            w.write(height)
            w.write(mapRoot)
        })
    }
}
