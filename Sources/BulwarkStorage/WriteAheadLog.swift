import BulwarkCore

/// The consensus write-ahead log (persist-before-send). Records are opaque bytes here (the
/// runtime encodes consensus `WALRecord`s), framed and checksummed like block-log records.
/// A final record cut short by a crash is dropped on open (it was never synced, so nothing it
/// holds was sent); damage anywhere else refuses to open, because a replica that cannot trust
/// what it signed must not sign again. That includes a final record that is whole but fails
/// its checksum: a crash does not write one, and the vote it held may have been sent.
public final class WriteAheadLog {
    public let path: String
    let directory: String
    let name: String
    let fileSystem: any FileSystem
    var file: any StorageFile
    var size: UInt64
    public private(set) var records: [[UInt8]]
    var dirty = false

    public init(path: String, fileSystem: any FileSystem = PosixFileSystem()) throws(StorageError) {
        self.path = path
        self.fileSystem = fileSystem
        let slash = path.lastIndex(of: "/")
        directory = slash.map { String(path[..<$0]) } ?? "."
        name = slash.map { String(path[path.index(after: $0)...]) } ?? path
        try fileSystem.createDirectory(directory)
        let created = !fileSystem.exists(path)
        file = try fileSystem.open(path, create: true)
        if created { try fileSystem.syncDirectory(directory) }
        let bytes = try file.read(at: 0, count: Int(try file.size()))
        let (found, ending) = RecordFraming.scan(bytes)
        records = found.map(\.payload)
        switch ending {
        case .clean: size = UInt64(bytes.count)
        case let .tornTail(offset) where RecordFraming.isWholeRecord(bytes, at: offset):
            throw .corrupt(path: path, offset: offset, reason: "the last record is whole but fails its checksum")
        case let .tornTail(offset):
            try file.truncate(to: offset)
            try file.sync()
            size = offset
        case let .damaged(offset, reason):
            throw .corrupt(path: path, offset: offset, reason: reason)
        }
    }

    /// Appends one record; durable only after `sync`.
    public func append(_ payload: [UInt8]) throws(StorageError) {
        try append(contentsOf: [payload])
    }

    /// Appends records with one write; durable only after `sync`.
    public func append(contentsOf payloads: [[UInt8]]) throws(StorageError) {
        guard !payloads.isEmpty else { return }
        var bytes: [UInt8] = []
        for payload in payloads { bytes.append(contentsOf: RecordFraming.frame(type: 1, payload: payload)) }
        try file.append(bytes)
        size += UInt64(bytes.count)
        records.append(contentsOf: payloads)
        dirty = true
    }

    public func sync() throws(StorageError) {
        guard dirty else { return }
        try file.sync()
        dirty = false
    }

    /// Replaces the log with `kept` (garbage collection below a stable checkpoint), atomically:
    /// after a crash the log is either the old one or exactly `kept`.
    public func rewrite(keeping kept: [[UInt8]]) throws(StorageError) {
        var bytes: [UInt8] = []
        for payload in kept { bytes.append(contentsOf: RecordFraming.frame(type: 1, payload: payload)) }
        file.close()
        try writeAtomically(fileSystem, directory: directory, name: name, bytes: bytes)
        file = try fileSystem.open(path, create: false)
        size = UInt64(bytes.count)
        records = kept
        dirty = false
    }
}

/// Snapshots of the state machine at checkpoint heights, written atomically; the newest one
/// that passes its checksum is loaded on start, so a restart does not replay from genesis.
public struct SnapshotStore {
    public let directory: String
    let fileSystem: any FileSystem
    /// How many snapshots to keep.
    let retained: Int

    public init(directory: String, fileSystem: any FileSystem = PosixFileSystem(), retained: Int = 2) throws(StorageError) {
        self.directory = directory
        self.fileSystem = fileSystem
        self.retained = retained
        try fileSystem.createDirectory(directory)
    }

    static func name(_ height: Height) -> String {
        let digits = String(height)
        return "state-" + String(repeating: "0", count: max(0, 16 - digits.count)) + digits + ".snap"
    }

    /// The largest snapshot `save` writes: one more byte and its record could not be read back.
    public static let snapshotBytesMax = RecordFraming.recordBytesMax - 1 - 8

    /// Writes `snapshot` atomically and keeps the newest `retained`. A snapshot larger than
    /// `snapshotBytesMax` is refused (`.tooLarge`) rather than written: every snapshot written
    /// must load.
    public func save(_ snapshot: [UInt8], height: Height) throws(StorageError) {
        guard snapshot.count <= Self.snapshotBytesMax else {
            throw .io(path: "\(directory)/\(Self.name(height))", operation: "write a snapshot to",
                      reason: "the state's snapshot of \(snapshot.count) bytes exceeds the largest record, \(Self.snapshotBytesMax) bytes")
        }
        var payload = CanonicalWriter()
        payload.write(height)
        payload.writeRaw(snapshot)
        try writeAtomically(fileSystem, directory: directory, name: Self.name(height),
                            bytes: RecordFraming.frame(type: 1, payload: payload.bytes))
        let all = try heights()
        for old in all.dropLast(retained) { try fileSystem.remove("\(directory)/\(Self.name(old))") }
        if all.count > retained { try fileSystem.syncDirectory(directory) }
    }

    /// The heights of the snapshot files present, oldest first (whether intact or not).
    func heights() throws(StorageError) -> [Height] {
        try fileSystem.list(directory).compactMap { name in
            guard name.hasPrefix("state-"), name.hasSuffix(".snap") else { return nil }
            return Height(name.dropFirst("state-".count).dropLast(".snap".count))
        }.sorted()
    }

    /// The newest snapshot at or below `maxHeight` that `use` accepts, as its height and what
    /// `use` made of its bytes. A snapshot that fails its checksum, or that `use` throws on, is
    /// passed to `skipped` with the reason, and the next older one is tried.
    public func latest<T>(atOrBelow maxHeight: Height = .max, skipped: (Height, any Error) -> Void = { _, _ in },
                          use: (Height, [UInt8]) throws -> T) throws(StorageError) -> (height: Height, value: T)? {
        for height in try heights().reversed() where height <= maxHeight {
            do {
                return (height, try use(height, try read(height)))
            } catch {
                skipped(height, error)
            }
        }
        return nil
    }

    /// The snapshot bytes saved at `height`; `.corrupt` if the file fails its checksum or is
    /// not the snapshot of that height.
    func read(_ height: Height) throws(StorageError) -> [UInt8] {
        let path = "\(directory)/\(Self.name(height))"
        let bytes = try readAll(fileSystem, path)
        let (records, ending) = RecordFraming.scan(bytes)
        guard ending == .clean, records.count == 1, records[0].payload.count >= 8 else {
            throw .corrupt(path: path, offset: 0, reason: "the snapshot fails its checksum")
        }
        var reader = CanonicalReader(records[0].payload)
        guard let stored = try? reader.readUInt64("height"), stored == height else {
            throw .corrupt(path: path, offset: 0, reason: "the snapshot is not of height \(height)")
        }
        return Array(records[0].payload.dropFirst(8))
    }
}
