import BulwarkCore
/// Framing of every stored record: `[u32 length][u32 crc32c][u8 type][payload]`, little-endian,
/// where `length` counts the type byte and the payload and the checksum covers both.
public enum RecordFraming {
    static let headerBytes = 8
    /// No record is larger than this; a longer length field is damage, not a record.
    static let recordBytesMax = 256 << 20

    /// One record of `type` holding `payload`, with its length and checksum.
    public static func frame(type: UInt8, payload: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(headerBytes + 1 + payload.count)
        append(type: type, to: &out) { $0.append(contentsOf: payload) }
        return out
    }

    /// Appends one framed record to `out`, its payload written in place by `payload`.
    static func append(type: UInt8, to out: inout [UInt8], payload: (inout [UInt8]) -> Void) {
        let start = out.count
        out.append(contentsOf: [0, 0, 0, 0, 0, 0, 0, 0, type])
        payload(&out)
        // Callers bound what they frame (`SnapshotStore.save` refuses larger snapshots), so a
        // longer record here is a bug: every record written must be one the scan reads back.
        precondition(out.count - start - headerBytes <= recordBytesMax, "record larger than recordBytesMax")
        let length = UInt32(out.count - start - headerBytes)
        let crc = out.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[(start + headerBytes)...])) }
        withUnsafeBytes(of: length.littleEndian) { for i in 0..<4 { out[start + i] = $0[i] } }
        withUnsafeBytes(of: crc.littleEndian) { for i in 0..<4 { out[start + 4 + i] = $0[i] } }
    }

    struct Record {
        var type: UInt8
        var payload: [UInt8]
        var offset: UInt64
        var end: UInt64
    }

    enum Ending: Equatable {
        /// Every byte belongs to a whole, valid record.
        case clean
        /// The last record is incomplete or fails its checksum and nothing follows it: a write
        /// torn by a crash. Valid data ends at `offset`.
        case tornTail(offset: UInt64)
        /// A record before the end is invalid.
        case damaged(offset: UInt64, reason: String)
    }

    /// The little-endian u32 at `at` (a record's length, or its checksum at `at + 4`).
    static func u32(_ bytes: [UInt8], at: Int) -> UInt32 {
        UInt32(bytes[at]) | UInt32(bytes[at + 1]) << 8 | UInt32(bytes[at + 2]) << 16 | UInt32(bytes[at + 3]) << 24
    }

    /// The type byte of the record starting at `offset`, if the file holds that much (it may
    /// be wrong when the record failed its checksum).
    static func type(in bytes: [UInt8], at offset: UInt64) -> UInt8? {
        offset < UInt64(bytes.count) && UInt64(bytes.count) - offset > UInt64(headerBytes) ? bytes[Int(offset) + headerBytes] : nil
    }

    /// Whether the torn tail at `offset` (as `scan` reports it) is in fact a whole record that
    /// fails its checksum: its length ends exactly at the end of the file, or the bytes to the
    /// end of the file match its checksum (only its length changed). A crash cuts a write
    /// short; it does not leave a whole record with other bytes in it. Where a record that was
    /// synced may not be lost unnoticed (the write-ahead log), such a tail is damage.
    static func isWholeRecord(_ bytes: [UInt8], at offset: UInt64) -> Bool {
        guard offset <= UInt64(bytes.count), UInt64(bytes.count) - offset >= UInt64(headerBytes) else { return false }
        let start = Int(offset)
        let length = Int(u32(bytes, at: start))
        guard length >= 1, length <= recordBytesMax else { return false }
        let bodyStart = start + headerBytes
        if bytes.count - bodyStart == length { return true }
        return bytes.count > bodyStart && CRC32C.checksum(bytes[bodyStart...]) == u32(bytes, at: start + 4)
    }

    /// Splits `bytes` into records, stopping at the first invalid one.
    static func scan(_ bytes: [UInt8]) -> (records: [Record], ending: Ending) {
        var records: [Record] = []
        var offset = 0
        func u32(_ at: Int) -> UInt32 { Self.u32(bytes, at: at) }
        while offset < bytes.count {
            guard bytes.count - offset >= headerBytes else { return (records, .tornTail(offset: UInt64(offset))) }
            let length = Int(u32(offset))
            let crc = u32(offset + 4)
            guard length >= 1, length <= recordBytesMax else {
                // A zero or absurd length at the very end can be a torn header; anywhere else it is damage.
                if bytes[offset...].allSatisfy({ $0 == 0 }) { return (records, .tornTail(offset: UInt64(offset))) }
                return (records, .damaged(offset: UInt64(offset), reason: "record length \(length) is impossible"))
            }
            let bodyStart = offset + headerBytes
            guard bytes.count - bodyStart >= length else { return (records, .tornTail(offset: UInt64(offset))) }
            let body = bytes[bodyStart..<(bodyStart + length)]
            guard CRC32C.checksum(body) == crc else {
                if bodyStart + length == bytes.count { return (records, .tornTail(offset: UInt64(offset))) }
                return (records, .damaged(offset: UInt64(offset), reason: "checksum mismatch"))
            }
            records.append(Record(type: body.first!, payload: Array(body.dropFirst()), offset: UInt64(offset),
                                  end: UInt64(bodyStart + length)))
            offset = bodyStart + length
        }
        return (records, .clean)
    }
}

/// Reads a whole file through the file system.
func readAll(_ fileSystem: any FileSystem, _ path: String) throws(StorageError) -> [UInt8] {
    let file = try fileSystem.open(path, create: false)
    defer { file.close() }
    return try file.read(at: 0, count: Int(try file.size()))
}

/// Writes `bytes` to `path` so that after a crash the file holds either its old contents or
/// all of `bytes`: temporary file, sync, rename, sync the directory. The file is private
/// (0600) unless `mode` says otherwise; the temporary file has that mode before it is renamed.
func writeAtomically(_ fileSystem: any FileSystem, directory: String, name: String, bytes: [UInt8],
                     mode: UInt32 = 0o600) throws(StorageError) {
    let temporary = PathName.join(directory, name + ".tmp")
    try fileSystem.remove(temporary)
    let file = try fileSystem.open(temporary, create: true)
    do {
        // Exactly `mode`, whatever the umask did, before any byte is written.
        try fileSystem.setPermissions(temporary, mode)
        try file.append(bytes)
        try file.sync()
    } catch {
        file.close()
        throw error
    }
    file.close()
    try fileSystem.rename(temporary, to: PathName.join(directory, name))
    try fileSystem.syncDirectory(directory)
}
