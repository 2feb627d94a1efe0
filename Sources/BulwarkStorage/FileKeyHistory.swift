import BulwarkCore
import Foundation

/// Key histories in one append-only file, so a replica's memory does not grow with every write
/// it has ever executed. Each entry is a checksummed record (`RecordFraming`) whose payload is
/// `[u64 previous position + 1, or 0][u64 height][u8 value present][u32 length][value]` in
/// the canonical encoding (length and value only when present); an entry's
/// position is its byte offset.
///
/// The file holds derived data: everything in it can be rebuilt by executing the block log.
/// So it is not synced per block. Appends collect in memory and reach the file at `flush`
/// (or once `pendingBytesMax` collect); `sync` makes them durable, which a state snapshot
/// needs first, since it names positions in this file. At start-up the replica trims the file
/// to the end its snapshot names (or to nothing, when it replays the whole ledger).
///
/// Appends, flushes and reads happen on the replica's core loop; `sync` may run elsewhere.
public final class FileKeyHistory: KeyHistoryStore, @unchecked Sendable {
    static let entryType: UInt8 = 1
    static let pendingBytesMax = 1 << 20
    static let remedy = " (the file holds nothing the block log does not: remove it, and the next start rebuilds it)"

    let path: String
    let file: any StorageFile
    /// Largest payload a valid entry can have.
    let payloadBytesMax: Int
    // Guarded by `lock`.
    private let lock = NSLock()
    /// Bytes in the file; `pending` follows them.
    private var fileEnd: UInt64
    private var pending: [UInt8] = []
    /// A write that failed: every later flush reports it.
    private var failure: StorageError?

    /// Opens (or creates) the history file at `path`. `valueBytesMax` bounds what a read will
    /// believe an entry's length to be.
    public init(path: String, valueBytesMax: Int, fileSystem: any FileSystem = PosixFileSystem()) throws(StorageError) {
        self.path = path
        let created = !fileSystem.exists(path)
        file = try fileSystem.open(path, create: true)
        if created {
            // A snapshot may name positions in this file: its directory entry must survive a crash too.
            try fileSystem.syncDirectory(parentDirectory(of: path))
        }
        fileEnd = try file.size()
        payloadBytesMax = 17 + 4 + valueBytesMax
    }

    deinit { file.close() }

    public var end: UInt64 { lock.withLock { fileEnd + UInt64(pending.count) } }

    public func append(_ entry: KeyHistoryEntry, previous: UInt64?) -> UInt64 {
        lock.withLock {
            let position = fileEnd + UInt64(pending.count)
            precondition(previous.map { $0 < position } ?? true, "a history chain points forward")
            // Framed in place: no copies per write.
            RecordFraming.append(type: Self.entryType, to: &pending) { out in
                withUnsafeBytes(of: (previous.map { $0 + 1 } ?? 0).littleEndian) { out.append(contentsOf: $0) }
                withUnsafeBytes(of: entry.height.littleEndian) { out.append(contentsOf: $0) }
                out.append(entry.value == nil ? 0 : 1)
                if let value = entry.value {
                    withUnsafeBytes(of: UInt32(value.count).littleEndian) { out.append(contentsOf: $0) }
                    out.append(contentsOf: value)
                }
            }
            if pending.count >= Self.pendingBytesMax { writePending() }
            return position
        }
    }

    /// Writes collected entries to the file (not yet durable); throws if any write failed.
    public func flush() throws(StorageError) {
        let failed = lock.withLock { () -> StorageError? in
            writePending()
            return failure
        }
        if let failed { throw failed }
    }

    /// Makes everything flushed durable.
    public func sync() throws(StorageError) { try file.sync() }

    /// Drops every entry at or after `end` (trimming to the end a snapshot names).
    public func truncate(to end: UInt64) throws(StorageError) {
        try flush()
        lock.lock()
        defer { lock.unlock() }
        guard end < fileEnd else { return }
        try file.truncate(to: end)
        fileEnd = end
    }

    /// Called with `lock` held.
    private func writePending() {
        guard !pending.isEmpty, failure == nil else { return }
        do {
            try file.append(pending)
            fileEnd += UInt64(pending.count)
            pending.removeAll(keepingCapacity: true)
        } catch {
            failure = error
        }
    }

    public func read(at position: UInt64) throws(KeyHistoryError) -> (entry: KeyHistoryEntry, previous: UInt64?) {
        let record: [UInt8]
        do { record = try recordBytes(at: position) } catch { throw KeyHistoryError("\(error)") }
        do {
            let scanned = RecordFraming.scan(record)
            guard scanned.ending == .clean, scanned.records.count == 1, let only = scanned.records.first,
                  only.type == Self.entryType else {
                throw CodecError.invalidValue(field: "history entry", reason: "checksum or framing does not match")
            }
            var r = CanonicalReader(only.payload)
            let previousPlusOne = try r.readUInt64("previous position")
            let height = try r.readUInt64("height")
            let value = try r.readBool("value present") ? try r.readBytes("value", max: payloadBytesMax) : nil
            try r.finish()
            guard previousPlusOne <= position else {
                throw CodecError.invalidValue(field: "previous position", reason: "\(previousPlusOne - 1) is not before \(position)")
            }
            return (KeyHistoryEntry(height: height, value: value), previousPlusOne == 0 ? nil : previousPlusOne - 1)
        } catch {
            throw KeyHistoryError("\(path) is damaged at byte \(position): \(error)\(Self.remedy)")
        }
    }

    /// The framed record at `position`, from the collected entries or from the file.
    private func recordBytes(at position: UInt64) throws -> [UInt8] {
        let header = RecordFraming.headerBytes
        let buffered = lock.withLock { () -> [UInt8]?? in
            guard position >= fileEnd else { return .some(nil) }
            let start = Int(position - fileEnd)
            guard start + header <= pending.count else { return .none }
            let length = Int(RecordFraming.u32(pending, at: start))
            guard length <= pending.count - start - header else { return .none }
            return .some(Array(pending[start..<(start + header + length)]))
        }
        switch buffered {
        case let .some(.some(bytes)): return bytes
        case .none: throw KeyHistoryError("no history entry at position \(position) of \(path)")
        case .some(.none): break
        }
        let head = try file.read(at: position, count: header)
        guard head.count == header else { throw KeyHistoryError("no history entry at position \(position) of \(path)") }
        let length = Int(RecordFraming.u32(head, at: 0))
        guard length >= 1, length <= 1 + payloadBytesMax else {
            throw KeyHistoryError("\(path) is damaged at byte \(position): entry length \(length) is impossible\(Self.remedy)")
        }
        let body = try file.read(at: position + UInt64(header), count: length)
        guard body.count == length else { throw KeyHistoryError("\(path) ends inside the entry at byte \(position)\(Self.remedy)") }
        return head + body
    }
}
