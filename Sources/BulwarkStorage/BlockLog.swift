import BulwarkCore

/// Record types in block-log segments.
enum BlockLogRecord: UInt8 {
    /// A block with its commit certificate.
    case entry = 1
    /// An execution certificate (stable checkpoint) for a height already in the log.
    case executionCertificate = 2
}

/// Read-only access to a block log directory (ARCHITECTURE.md §4): segment files of checksummed
/// records, checked again after reading — checksums, and that each block links to the one
/// before (height, prevBlockHash, historyRoot, txRoot, certificate naming the block). It does
/// not check signatures (the auditor does) and depends on nothing but `BulwarkCore`.
public struct BlockLogReader {
    struct Position {
        var segment: String
        var offset: UInt64
        var end: UInt64
        var blockHash: Digest
    }

    public let directory: String
    let fileSystem: any FileSystem
    var positions: [Position] = []
    public internal(set) var executionCertificates: [ExecutionCertificate] = []
    /// The chain after the last valid block.
    public internal(set) var tip: ChainTip = .genesis
    /// Damage found before the end of the log; nothing at or after it is served.
    public internal(set) var damage: LogDamage?
    /// A torn final record (a crash during a write): segment and offset where valid data ends.
    public private(set) var tornTail: (segment: String, offset: UInt64)?
    public internal(set) var segments: [String] = []
    /// Where the last segment read began: the chain before it, and the number of positions and
    /// certificates before it (the log continues that segment and indexes it once sealed).
    var lastSegmentStart = SegmentStart(tip: .genesis, position: 0, certificate: 0)
    /// Sealed segments that were scanned because they had no usable index.
    var unindexed: [(segment: String, start: SegmentStart, end: SegmentStart, bytes: UInt64)] = []

    struct SegmentStart {
        var tip: ChainTip
        var position: Int
        var certificate: Int
    }

    public static func segmentName(_ index: Int) -> String {
        let digits = String(index)
        return "segment-" + String(repeating: "0", count: max(0, 8 - digits.count)) + digits + ".log"
    }

    /// Opens and checks the log. With `useSegmentIndexes`, a sealed segment with a usable
    /// index (see `SegmentIndex`) is taken from it instead of being read; the auditor leaves
    /// this off and reads every record.
    public init(directory: String, fileSystem: any FileSystem = PosixFileSystem(), useSegmentIndexes: Bool = false) throws(StorageError) {
        self.directory = directory
        self.fileSystem = fileSystem
        guard fileSystem.exists(directory) else { return }
        segments = try fileSystem.list(directory).filter { $0.hasPrefix("segment-") && $0.hasSuffix(".log") }
        for (index, segment) in segments.enumerated() {
            lastSegmentStart = current
            let sealed = index < segments.count - 1
            if sealed, useSegmentIndexes, try adoptIndex(of: segment) { continue }
            let bytes = try readAll(fileSystem, "\(directory)/\(segment)")
            let (records, ending) = RecordFraming.scan(bytes)
            for record in records {
                if let problem = accept(record, segment: segment) {
                    damage = LogDamage(height: problem.height, segment: segment, offset: record.offset, reason: problem.reason,
                                       record: problem.record ?? LogDamage.recordKind(type: record.type))
                    return
                }
            }
            let kind = { (offset: UInt64) in LogDamage.recordKind(type: RecordFraming.type(in: bytes, at: offset)) }
            switch ending {
            case .clean:
                if sealed {
                    unindexed.append((segment, lastSegmentStart, current, UInt64(bytes.count)))
                }
                continue
            case let .tornTail(offset):
                if index == segments.count - 1 {
                    tornTail = (segment, offset)
                } else {
                    damage = LogDamage(height: tip.height + 1, segment: segment, offset: offset,
                                       reason: "record cut short before the last segment", record: kind(offset))
                }
                return
            case let .damaged(offset, reason):
                damage = LogDamage(height: tip.height + 1, segment: segment, offset: offset, reason: reason, record: kind(offset))
                return
            }
        }
    }

    /// Takes a sealed segment's blocks and certificates from its index if the index exists and
    /// fits the segment and the chain so far; false (and nothing taken) otherwise.
    private mutating func adoptIndex(of segment: String) throws(StorageError) -> Bool {
        let path = "\(directory)/\(SegmentIndex.name(of: segment))"
        guard fileSystem.exists(path), let index = SegmentIndex(decoding: try readAll(fileSystem, path)) else { return false }
        let file = try fileSystem.open("\(directory)/\(segment)", create: false)
        defer { file.close() }
        // Not a copy of `self`: that would share `positions` and copy it on the next append.
        guard index.fits(segmentBytes: try file.size(), after: tip, earlierHash: { self.blockHash(at: $0) }) else { return false }
        positions.reserveCapacity(positions.count + index.blocks.count)
        for block in index.blocks {
            positions.append(Position(segment: segment, offset: block.offset, end: block.end, blockHash: block.blockHash))
        }
        executionCertificates += index.certificates
        tip = index.tipAfter
        return true
    }

    /// The index of a segment whose records took the log from `start` to `end`.
    func index(from start: SegmentStart, to end: SegmentStart, segmentBytes: UInt64) -> SegmentIndex {
        SegmentIndex(segmentBytes: segmentBytes, tipBefore: start.tip, tipAfter: end.tip,
                     blocks: positions[start.position..<end.position].map { .init(offset: $0.offset, end: $0.end, blockHash: $0.blockHash) },
                     certificates: Array(executionCertificates[start.certificate..<end.certificate]))
    }

    /// Where the log stands now, as the start of a segment.
    var current: SegmentStart { SegmentStart(tip: tip, position: positions.count, certificate: executionCertificates.count) }

    /// Takes one checksummed record; returns why it cannot follow the log, if it cannot, and
    /// the height the problem is at: the next block's for a block, the one a certificate names
    /// for a certificate (the last block's when it names none there is).
    private mutating func accept(_ record: RecordFraming.Record, segment: String)
        -> (height: Height, record: String?, reason: String)? {
        switch BlockLogRecord(rawValue: record.type) {
        case .entry:
            let entry: LedgerEntry
            do { entry = try LedgerEntry(decoding: record.payload) } catch {
                return (tip.height + 1, nil, "undecodable block: \(error)")
            }
            do {
                tip = try tip.checkLinkage(entry)
            } catch {
                return (tip.height + 1, error.record, error.reason)
            }
            positions.append(Position(segment: segment, offset: record.offset, end: record.end, blockHash: tip.blockHash))
        case .executionCertificate:
            let certificate: ExecutionCertificate
            do { certificate = try ExecutionCertificate(decoding: record.payload) } catch {
                return (tip.height, nil, "undecodable execution certificate: \(error)")
            }
            guard certificate.height >= 1, certificate.height <= tip.height,
                  positions[Int(certificate.height) - 1].blockHash == certificate.blockHash else {
                let height = certificate.height >= 1 && certificate.height <= tip.height ? certificate.height : tip.height
                return (height, nil, "the execution certificate for height \(certificate.height) names a block not in the log")
            }
            executionCertificates.append(certificate)
        case nil:
            return (tip.height + 1, nil, "unknown record type \(record.type)")
        }
        return nil
    }

    /// The number of blocks that can be served.
    public var height: Height { tip.height }

    /// Reads the block at `height` (1...`self.height`) and checks it against the index.
    public func entry(at height: Height) throws(StorageError) -> LedgerEntry {
        try Self.read(location(of: height), fileSystem: fileSystem)
    }

    /// Where a block is stored, with the hash it must have: enough to read it on another thread
    /// than the one appending (`read(_:fileSystem:)`), since appends never touch written bytes.
    public struct Location: Sendable {
        public let height: Height
        let path: String
        let offset: UInt64
        let end: UInt64
        let blockHash: Digest
    }

    public func location(of height: Height) -> Location {
        precondition(height >= 1 && height <= self.height, "height \(height) is not in the log")
        let position = positions[Int(height) - 1]
        return Location(height: height, path: "\(directory)/\(position.segment)", offset: position.offset, end: position.end,
                        blockHash: position.blockHash)
    }

    /// The block at `location`, checked (checksum and block hash) as it is read.
    public static func read(_ location: Location, fileSystem: any FileSystem) throws(StorageError) -> LedgerEntry {
        let file = try fileSystem.open(location.path, create: false)
        defer { file.close() }
        let bytes = try file.read(at: location.offset, count: Int(location.end - location.offset))
        let (records, _) = RecordFraming.scan(bytes)
        guard let record = records.first, record.type == BlockLogRecord.entry.rawValue,
              let entry = try? LedgerEntry(decoding: record.payload), entry.block.hash == location.blockHash else {
            throw .corrupt(path: location.path, offset: location.offset,
                           reason: "block \(location.height) changed after the log was opened")
        }
        return entry
    }

    /// Calls `body` with every block in height order.
    public func forEachEntry(_ body: (LedgerEntry) throws -> Void) throws {
        // Read each segment once rather than once per block.
        var cache: (segment: String, bytes: [UInt8])?
        for (index, position) in positions.enumerated() {
            if cache?.segment != position.segment {
                cache = (position.segment, try readAll(fileSystem, "\(directory)/\(position.segment)"))
            }
            let slice = Array(cache!.bytes[Int(position.offset)..<Int(position.end)])
            guard let record = RecordFraming.scan(slice).records.first,
                  let entry = try? LedgerEntry(decoding: record.payload), entry.block.hash == position.blockHash else {
                throw StorageError.corrupt(path: "\(directory)/\(position.segment)", offset: position.offset,
                                           reason: "block \(index + 1) changed after the log was opened")
            }
            try body(entry)
        }
    }

    public func blockHash(at height: Height) -> Digest? {
        height >= 1 && height <= self.height ? positions[Int(height) - 1].blockHash : nil
    }
}

/// The replica's append-only block log with crash recovery and group commit.
///
/// On open, a torn final record (a crash during a write) is truncated; damage before the
/// tail is reported in `damage` with its height and byte offset, and the log is served only
/// up to the block before it (repair comes from peers: `truncateDamage` then re-append).
/// Appends are buffered in the OS; `sync` makes all of them durable with one fsync, and
/// `durableHeight` says how far that reached: a client is answered only below it.
public final class BlockLog {
    public let directory: String
    let fileSystem: any FileSystem
    let segmentBytesMax: UInt64
    var reader: BlockLogReader
    var file: (any StorageFile)?
    var segmentIndex: Int
    var segmentSize: UInt64 = 0
    public private(set) var durableHeight: Height
    /// Heights whose blocks were appended to a segment that has not been synced since.
    var unsyncedSegments: [any StorageFile] = []

    /// Sealed segments are taken from their indexes where usable (see `SegmentIndex`), so
    /// opening reads only the segment being written; a sealed segment found without one is
    /// indexed now, for the next start.
    public static let segmentBytesDefault: UInt64 = 64 << 20

    public init(directory: String, fileSystem: any FileSystem = PosixFileSystem(),
                segmentBytesMax: UInt64 = segmentBytesDefault) throws(StorageError) {
        self.directory = directory
        self.fileSystem = fileSystem
        self.segmentBytesMax = segmentBytesMax
        try fileSystem.createDirectory(directory)
        reader = try BlockLogReader(directory: directory, fileSystem: fileSystem, useSegmentIndexes: true)
        segmentIndex = reader.segments.count
        if let torn = reader.tornTail {
            let file = try fileSystem.open("\(directory)/\(torn.segment)", create: false)
            try file.truncate(to: torn.offset)
            try file.sync()
            file.close()
        }
        durableHeight = reader.height
        if reader.damage == nil, let last = reader.segments.last {
            file = try fileSystem.open("\(directory)/\(last)", create: false)
            segmentSize = try file!.size()
        }
        for (segment, start, end, bytes) in reader.unindexed {
            writeIndex(reader.index(from: start, to: end, segmentBytes: bytes), of: segment)
        }
    }

    public var tip: ChainTip { reader.tip }
    public var height: Height { reader.height }
    public var damage: LogDamage? { reader.damage }
    public var executionCertificates: [ExecutionCertificate] { reader.executionCertificates }

    /// The stored execution certificate for `height`, if any. Certificates are stored in
    /// increasing height order (a stable checkpoint only moves forward), so this is a binary
    /// search.
    public func executionCertificate(at height: Height) -> ExecutionCertificate? {
        let certificates = reader.executionCertificates
        var low = 0, high = certificates.count
        while low < high {
            let middle = low + (high - low) / 2
            if certificates[middle].height < height { low = middle + 1 } else { high = middle }
        }
        return low < certificates.count && certificates[low].height == height ? certificates[low] : nil
    }
    public var latestExecutionCertificate: ExecutionCertificate? { reader.executionCertificates.last }

    public func entry(at height: Height) throws(StorageError) -> LedgerEntry { try reader.entry(at: height) }
    public func location(of height: Height) -> BlockLogReader.Location { reader.location(of: height) }
    public func blockHash(at height: Height) -> Digest? { reader.blockHash(at: height) }

    /// Appends the next block. The chain (height, prevBlockHash, historyRoot, certificate) is
    /// asserted before writing: a block that does not link is a bug in the caller, never
    /// something to store. The txRoot was checked by consensus and is checked again on reading.
    public func append(_ entry: LedgerEntry) throws(StorageError) {
        if let damage { throw .damagedLog(damage) }
        let next: ChainTip
        do { next = try reader.tip.checkLinkage(entry, checkTxRoot: false) } catch {
            preconditionFailure("appending a block that does not follow the log: \(error)")
        }
        let position = try write(.entry, entry.encoded())
        reader.positions.append(.init(segment: position.segment, offset: position.offset, end: position.end,
                                      blockHash: next.blockHash))
        reader.tip = next
    }

    /// Stores a stable checkpoint's execution certificate for a block already in the log.
    public func append(_ certificate: ExecutionCertificate) throws(StorageError) {
        if let damage { throw .damagedLog(damage) }
        precondition(reader.blockHash(at: certificate.height) == certificate.blockHash,
                     "execution certificate for a block not in the log")
        _ = try write(.executionCertificate, certificate.encoded())
        reader.executionCertificates.append(certificate)
    }

    private func write(_ type: BlockLogRecord, _ payload: [UInt8]) throws(StorageError)
        -> (segment: String, offset: UInt64, end: UInt64)
    {
        let record = RecordFraming.frame(type: type.rawValue, payload: payload)
        if file == nil || segmentSize + UInt64(record.count) > segmentBytesMax && segmentSize > 0 {
            try rotate()
        }
        let offset = segmentSize
        try file!.append(record)
        segmentSize += UInt64(record.count)
        if !unsyncedSegments.contains(where: { $0 === file! }) { unsyncedSegments.append(file!) }
        return (reader.segments.last!, offset, segmentSize)
    }

    private func rotate() throws(StorageError) {
        // Only the last segment may end in a torn record: finish the current one first.
        if let file {
            try file.sync()
            unsyncedSegments.removeAll { $0 === file }
            writeIndex(reader.index(from: reader.lastSegmentStart, to: reader.current, segmentBytes: segmentSize),
                       of: reader.segments.last!)
        }
        reader.lastSegmentStart = reader.current
        segmentIndex += 1
        let name = BlockLogReader.segmentName(segmentIndex)
        let next = try fileSystem.open("\(directory)/\(name)", create: true)
        // The new segment's directory entry must be durable before anything in it counts.
        try fileSystem.syncDirectory(directory)
        file = next
        segmentSize = 0
        reader.segments.append(name)
    }

    /// Writes a sealed segment's index. An index only saves reading the segment at the next
    /// start, so failing to write one loses nothing: the segment is scanned instead.
    private func writeIndex(_ index: SegmentIndex, of segment: String) {
        do {
            try writeAtomically(fileSystem, directory: directory, name: SegmentIndex.name(of: segment), bytes: index.encoded())
        } catch {
            indexWriteFailures += 1
        }
    }

    /// Segment indexes that could not be written (each costs one segment scan at start-up).
    public private(set) var indexWriteFailures = 0

    /// Group commit: one fsync per touched segment makes every block appended so far durable.
    /// Returns the durable height.
    @discardableResult
    public func sync() throws(StorageError) -> Height {
        let height = reader.height
        for segment in unsyncedSegments { try segment.sync() }
        unsyncedSegments.removeAll()
        durableHeight = height
        return height
    }

    /// Cuts the files at `damage` (the record's start) and removes everything after it, durably;
    /// the segment cut is returned open. The log's own view is not updated: after damage found
    /// in a log already open (`scrub`), the log must be opened again.
    @discardableResult
    public func cut(at damage: LogDamage) throws(StorageError) -> any StorageFile {
        let names = reader.segments
        guard let index = names.firstIndex(of: damage.segment) else {
            throw .io(path: "\(directory)/\(damage.segment)", operation: "cut", reason: "no such segment")
        }
        // Indexes go first: an index must never outlive the segment contents it describes.
        for name in names[index...] { try fileSystem.remove("\(directory)/\(SegmentIndex.name(of: name))") }
        let damaged = try fileSystem.open("\(directory)/\(damage.segment)", create: false)
        try damaged.truncate(to: damage.offset)
        try damaged.sync()
        for name in names[(index + 1)...] { try fileSystem.remove("\(directory)/\(name)") }
        try fileSystem.syncDirectory(directory)
        return damaged
    }

    /// Damage found in the block at `height` when it was read (its record's checksum or hash
    /// no longer holds): where to cut the log.
    public func damage(at height: Height, reason: String) -> LogDamage {
        let position = reader.positions[Int(height) - 1]
        return LogDamage(height: height, segment: position.segment, offset: position.offset, reason: reason)
    }

    /// The sealed segments (every one but the one being written), oldest first.
    public var sealedSegments: [String] { Array(reader.segments.dropLast()) }

    /// What scrubbing sealed segment `segment` needs, taken on the log's thread: where its file
    /// is and where each of its blocks starts (found by binary search: segments hold
    /// consecutive heights, and their names sort in their order).
    public func scrubPlan(segment: String) -> ScrubPlan {
        let positions = reader.positions
        func firstIndex(where isPast: (String) -> Bool) -> Int {
            var low = 0, high = positions.count
            while low < high {
                let middle = (low + high) / 2
                if isPast(positions[middle].segment) { high = middle } else { low = middle + 1 }
            }
            return low
        }
        let first = firstIndex { $0 >= segment }, end = firstIndex { $0 > segment }
        return ScrubPlan(path: "\(directory)/\(segment)", segment: segment, firstHeight: Height(first) + 1,
                         blockOffsets: positions[first..<end].map(\.offset))
    }

    public struct ScrubPlan: Sendable {
        let path: String
        let segment: String
        let firstHeight: Height
        let blockOffsets: [UInt64]
    }

    /// Reads a sealed segment in full and checks every record's checksum, and that every block
    /// the log knows there starts a record: the first damage found, or nil. A latent sector
    /// error in a segment taken from its index at start-up is found only this way. Reads only:
    /// safe off the log's thread.
    public static func scrub(_ plan: ScrubPlan, fileSystem: any FileSystem) -> LogDamage? {
        guard let bytes = try? readAll(fileSystem, plan.path) else { return nil }
        let (records, ending) = RecordFraming.scan(bytes)
        // Damage in the record starting at `offset` costs the first block at or after it, and
        // every block after that.
        func damage(at offset: UInt64, _ reason: String) -> LogDamage {
            let lost = plan.blockOffsets.firstIndex { $0 >= offset } ?? plan.blockOffsets.count
            return LogDamage(height: plan.firstHeight + Height(lost), segment: plan.segment, offset: offset, reason: reason)
        }
        if case let .damaged(offset, reason) = ending { return damage(at: offset, reason) }
        if case let .tornTail(offset) = ending { return damage(at: offset, "record cut short in a sealed segment") }
        // Every block the log knows in this segment must start a record that passed its checksum.
        let starts = Set(records.map(\.offset))
        for (index, offset) in plan.blockOffsets.enumerated() where !starts.contains(offset) {
            return damage(at: offset, "block \(plan.firstHeight + Height(index)) is not where the log's index of it says")
        }
        return nil
    }

    /// Cuts the log at the damaged record and everything after it, so that blocks fetched from
    /// peers can be appended from the last good height on.
    public func truncateDamage() throws(StorageError) {
        guard let damage = reader.damage else { return }
        let names = reader.segments
        guard let index = names.firstIndex(of: damage.segment) else { return }
        let damaged = try cut(at: damage)
        reader.segments = Array(names[...index])
        reader.damage = nil
        file = damaged
        segmentSize = damage.offset
        segmentIndex = Int(damage.segment.dropFirst("segment-".count).dropLast(".log".count)) ?? index + 1
        durableHeight = reader.height
    }
}
