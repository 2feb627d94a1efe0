import BulwarkCore

/// Reads a block log that a replica is still writing, record by record as records land
/// (`bulwark-verify follow`). It trusts nothing: every record is checked as `BlockLogReader`
/// checks it (checksum, decoding), and what cannot be a write in progress is damage.
///
/// A record is taken only when it is whole and its checksum holds. An incomplete or failing
/// record at the very end of the segment being written is a write in progress (or a torn
/// tail the replica will truncate on restart): the tail waits for it. The same record is
/// damage once anything follows it, or once its segment is sealed (a later segment exists:
/// the replica syncs a segment before it starts the next). A segment that shrinks below what
/// was already read is damage too: a ledger never loses a block it showed.
public struct LogTail {
    public enum Item: Sendable {
        case entry(LedgerEntry)
        case executionCertificate(ExecutionCertificate)
    }

    public let directory: String
    let fileSystem: any FileSystem
    /// The segment being read, and the bytes of it already taken.
    public private(set) var segment: String?
    public private(set) var offset: UInt64 = 0
    /// The first damage found; nothing is read after it.
    public private(set) var damage: LogDamage?
    /// Blocks taken so far: the height a damaged block would have had is one more.
    public private(set) var blocks: Height = 0
    /// Most bytes read from a segment in one poll, so a long segment is taken in pieces.
    let readBytesMax: Int

    public init(directory: String, fileSystem: any FileSystem = PosixFileSystem(), readBytesMax: Int = 16 << 20) {
        self.directory = directory
        self.fileSystem = fileSystem
        self.readBytesMax = max(readBytesMax, 1 << 20)
    }

    /// The records that landed since the last call, in order; empty when none did. After
    /// damage, always empty (see `damage`).
    public mutating func poll() throws(StorageError) -> [Item] {
        guard damage == nil, fileSystem.exists(directory) else { return [] }
        let segments = try fileSystem.list(directory).filter { $0.hasPrefix("segment-") && $0.hasSuffix(".log") }
        if segment == nil {
            guard let first = segments.first else { return [] }
            segment = first
        }
        var items: [Item] = []
        while let current = segment, damage == nil {
            guard let position = segments.firstIndex(of: current) else {
                damage = LogDamage(height: blocks + 1, segment: current, offset: offset,
                                   reason: "the segment was removed after \(offset) bytes of it were read", record: "record")
                break
            }
            let sealed = position < segments.count - 1
            let (taken, complete, more) = try read(current, sealed: sealed)
            items += taken
            if more, !taken.isEmpty, damage == nil { continue }
            guard sealed, complete, damage == nil else { break }
            segment = segments[position + 1]
            offset = 0
        }
        return items
    }

    /// Takes the whole records of `name` past `offset`: `complete` when the segment was read
    /// to its end and every byte of it taken, `more` when the read stopped at `readBytesMax`.
    private mutating func read(_ name: String, sealed: Bool) throws(StorageError) -> (items: [Item], complete: Bool, more: Bool) {
        let path = "\(directory)/\(name)"
        let file = try fileSystem.open(path, create: false)
        defer { file.close() }
        let size = try file.size()
        guard size >= offset else {
            damage = LogDamage(height: blocks + 1, segment: name, offset: offset,
                               reason: "the segment shrank to \(size) bytes after \(offset) were read", record: "record")
            return ([], false, false)
        }
        var count = Int(min(size - offset, UInt64(readBytesMax)))
        var bytes = try file.read(at: offset, count: count)
        var (records, ending) = RecordFraming.scan(bytes)
        if records.isEmpty, case .tornTail = ending, UInt64(count) < size - offset {
            // One record longer than the read limit: read it whole.
            count = Int(size - offset)
            bytes = try file.read(at: offset, count: count)
            (records, ending) = RecordFraming.scan(bytes)
        }
        let whole = offset + UInt64(count) == size
        let more = !whole
        var items: [Item] = []
        for record in records {
            guard let item = decode(record, segment: name) else { return (items, false, false) }
            items.append(item)
            offset += record.end - record.offset
        }
        switch ending {
        case .clean:
            return (items, whole, more)
        case let .tornTail(at):
            // Cut short by the read limit, or a write in progress: wait, unless nothing more
            // can come (a sealed segment read to its end).
            if sealed, whole {
                damage = LogDamage(height: blocks + 1, segment: name, offset: offset,
                                   reason: "record cut short in a sealed segment",
                                   record: LogDamage.recordKind(type: RecordFraming.type(in: bytes, at: at)))
            }
            return (items, false, more)
        case let .damaged(at, reason):
            damage = LogDamage(height: blocks + 1, segment: name, offset: offset, reason: reason,
                               record: LogDamage.recordKind(type: RecordFraming.type(in: bytes, at: at)))
            return (items, false, false)
        }
    }

    private mutating func decode(_ record: RecordFraming.Record, segment name: String) -> Item? {
        let at = offset
        do throws(CodecError) {
            switch record.type {
            case 1:
                let entry = try LedgerEntry(decoding: record.payload)
                blocks += 1
                return .entry(entry)
            case 2:
                return .executionCertificate(try ExecutionCertificate(decoding: record.payload))
            default:
                damage = LogDamage(height: blocks + 1, segment: name, offset: at, reason: "unknown record type \(record.type)",
                                   record: LogDamage.recordKind(type: record.type))
            }
        } catch {
            damage = LogDamage(height: record.type == 1 ? blocks + 1 : blocks, segment: name, offset: at,
                               reason: "undecodable \(LogDamage.recordKind(type: record.type)): \(error)",
                               record: LogDamage.recordKind(type: record.type))
        }
        return nil
    }
}
