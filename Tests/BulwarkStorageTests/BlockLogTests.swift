import BulwarkCore
import BulwarkStateMachine
@testable import BulwarkStorage
import BulwarkTestSupport
import Foundation
import Testing

@Suite struct BlockLogTests {
    static let fixture = LedgerFixture.ledger(blocks: 24)
    let directory = "/data/blocks"

    @Test func appendSyncAndReopenAcrossSegments() throws {
        let fs = SimulatedFileSystem()
        let log = try BlockLog(directory: directory, fileSystem: fs, segmentBytesMax: 2048)
        for entry in Self.fixture.entries {
            try log.append(entry)
            if let cert = Self.fixture.executionCertificates.first(where: { $0.height == entry.block.height }) {
                try log.append(cert)
            }
        }
        #expect(log.durableHeight == 0)
        #expect(try log.sync() == 24)
        let reopened = try BlockLog(directory: directory, fileSystem: fs, segmentBytesMax: 2048)
        #expect(reopened.height == 24 && reopened.damage == nil)
        #expect(reopened.tip == Self.fixture.tip)
        #expect(reopened.executionCertificates == Self.fixture.executionCertificates)
        #expect(try fs.list(directory).count > 3, "small segments rotate")
        for entry in Self.fixture.entries { #expect(try reopened.entry(at: entry.block.height) == entry) }
    }

    /// The workload appends blocks, syncing every third and storing execution certificates.
    /// Returns the height the last successful sync made durable.
    static func workload(_ log: BlockLog) -> (durable: Height, crashed: Bool) {
        var durable: Height = 0
        do {
            for entry in fixture.entries {
                try log.append(entry)
                if let cert = fixture.executionCertificates.first(where: { $0.height == entry.block.height }) {
                    try log.append(cert)
                }
                if entry.block.height % 3 == 0 { durable = try log.sync() }
            }
            durable = try log.sync()
            return (durable, false)
        } catch {
            return (durable, true)
        }
    }

    /// Crash at every write boundary — before and after each write, before and after each
    /// fsync, with and without a torn tail — then reopen: every block reported durable is
    /// there intact, nothing after a torn tail is served, and the log accepts appends again.
    @Test func crashAtEveryWriteBoundary() throws {
        let clean = SimulatedFileSystem()
        _ = Self.workload(try BlockLog(directory: directory, fileSystem: clean, segmentBytesMax: 4096))
        let operations = clean.operations
        #expect(operations > 40)
        for crashAt in 0...operations {
            for torn in [false, true] {
                let fs = SimulatedFileSystem()
                let log = try BlockLog(directory: directory, fileSystem: fs, segmentBytesMax: 4096)
                fs.crashAfterOperations = crashAt
                let (durable, _) = Self.workload(log)
                fs.crash(tornBytes: { torn ? $0 * 2 / 3 : 0 })
                let reopened = try BlockLog(directory: directory, fileSystem: fs, segmentBytesMax: 4096)
                #expect(reopened.damage == nil, "crash at \(crashAt), torn \(torn)")
                #expect(reopened.height >= durable, "crash at \(crashAt): lost durable blocks")
                for height in stride(from: 1, through: reopened.height, by: 1) {
                    #expect(try reopened.entry(at: height) == Self.fixture.entries[Int(height) - 1])
                }
                // The recovered log keeps going from where it ends.
                if reopened.height < 24 {
                    try reopened.append(Self.fixture.entries[Int(reopened.height)])
                    try reopened.sync()
                    #expect(try BlockLog(directory: directory, fileSystem: fs, segmentBytesMax: 4096).height == reopened.height)
                }
            }
        }
    }

    @Test func damageBeforeTheTailIsReportedWithItsHeightAndNotServed() throws {
        let fs = SimulatedFileSystem()
        let log = try BlockLog(directory: directory, fileSystem: fs)
        for entry in Self.fixture.entries.prefix(10) { try log.append(entry) }
        try log.sync()
        let segment = "\(directory)/\(BlockLogReader.segmentName(1))"
        let offset = log.reader.positions[6].offset  // block 7
        fs.corrupt(segment, at: Int(offset) + 40)
        let reopened = try BlockLog(directory: directory, fileSystem: fs)
        #expect(reopened.damage?.height == 7)
        #expect(reopened.damage?.offset == offset)
        #expect(reopened.damage?.reason == "checksum mismatch")
        #expect(reopened.height == 6)
        #expect(throws: StorageError.self) { try reopened.append(Self.fixture.entries[6]) }
        // The read-only reader reports the same and changes nothing.
        let before = fs.bytes(segment)
        let reader = try BlockLogReader(directory: directory, fileSystem: fs)
        #expect(reader.damage?.height == 7 && reader.height == 6)
        #expect(fs.bytes(segment) == before)
        // Repair: cut at the damage, then re-append blocks fetched from peers.
        try reopened.truncateDamage()
        for entry in Self.fixture.entries[6..<10] { try reopened.append(entry) }
        try reopened.sync()
        let repaired = try BlockLog(directory: directory, fileSystem: fs)
        #expect(repaired.height == 10 && repaired.damage == nil)
    }

    /// Writes the fixture with small segments; returns the sealed segments' paths.
    func writeSegmented(_ fs: SimulatedFileSystem) throws -> [String] {
        let log = try BlockLog(directory: directory, fileSystem: fs, segmentBytesMax: 2048)
        for entry in Self.fixture.entries {
            try log.append(entry)
            for cert in Self.fixture.executionCertificates where cert.height == entry.block.height { try log.append(cert) }
        }
        try log.sync()
        return log.reader.segments.dropLast().map { "\(directory)/\($0)" }
    }

    func indexPath(_ segment: String) -> String { String(segment.dropLast(".log".count)) + ".idx" }

    @Test func sealedSegmentsOpenFromTheirIndexesWithoutBeingRead() throws {
        let fs = SimulatedFileSystem()
        let sealed = try writeSegmented(fs)
        #expect(sealed.count >= 3)
        for segment in sealed { #expect(fs.exists(indexPath(segment)), "\(segment) is indexed when sealed") }
        let scanned = try BlockLogReader(directory: directory, fileSystem: fs)
        let indexed = try BlockLogReader(directory: directory, fileSystem: fs, useSegmentIndexes: true)
        #expect(indexed.unindexed.isEmpty && scanned.unindexed.count == sealed.count)
        #expect(indexed.tip == Self.fixture.tip && scanned.tip == Self.fixture.tip)
        #expect(indexed.executionCertificates == Self.fixture.executionCertificates)
        for entry in Self.fixture.entries {
            #expect(indexed.blockHash(at: entry.block.height) == entry.block.hash)
            #expect(try indexed.entry(at: entry.block.height) == entry)
        }
        // Damage inside a sealed segment is not read at start-up, but is still caught when the
        // block is read, and by a reader that scans (as the auditor does).
        let height = indexed.positions.firstIndex { $0.segment == BlockLogReader.segmentName(2) }! + 1
        fs.corrupt("\(directory)/\(BlockLogReader.segmentName(2))", at: Int(indexed.positions[height - 1].offset) + 40)
        let reopened = try BlockLog(directory: directory, fileSystem: fs, segmentBytesMax: 2048)
        #expect(reopened.damage == nil && reopened.tip == Self.fixture.tip)
        #expect(throws: StorageError.self) { try reopened.entry(at: Height(height)) }
        #expect(try BlockLogReader(directory: directory, fileSystem: fs).damage?.height == Height(height))
    }

    /// Scrubbing finds what opening from indexes cannot: a flipped bit in a sealed segment,
    /// with the first height it costs; cutting the log there leaves exactly the blocks before.
    @Test func scrubbingFindsDamageInASealedSegmentAndTheLogIsCutThere() throws {
        let fs = SimulatedFileSystem()
        let sealed = try writeSegmented(fs)
        let clean = try BlockLog(directory: directory, fileSystem: fs, segmentBytesMax: 2048)
        #expect(clean.sealedSegments.count == sealed.count)
        for segment in clean.sealedSegments { #expect(BlockLog.scrub(clean.scrubPlan(segment: segment), fileSystem: fs) == nil) }
        let indexed = try BlockLogReader(directory: directory, fileSystem: fs, useSegmentIndexes: true)
        let segment = BlockLogReader.segmentName(2)
        let height = indexed.positions.firstIndex { $0.segment == segment }! + 2
        fs.corrupt("\(directory)/\(segment)", at: Int(indexed.positions[height - 1].offset) + 40)
        let log = try BlockLog(directory: directory, fileSystem: fs, segmentBytesMax: 2048)
        #expect(log.damage == nil, "opened from its index, the damage is not seen")
        let damage = try #require(BlockLog.scrub(log.scrubPlan(segment: segment), fileSystem: fs))
        #expect(damage.height == Height(height) && damage.segment == segment)
        #expect(damage.offset == indexed.positions[height - 1].offset)
        try log.cut(at: damage)
        let reopened = try BlockLog(directory: directory, fileSystem: fs, segmentBytesMax: 2048)
        #expect(reopened.damage == nil && reopened.height == Height(height - 1))
        #expect(reopened.blockHash(at: Height(height - 1)) == Self.fixture.entries[height - 2].block.hash)
    }

    @Test func anIndexThatDoesNotFitIsIgnoredAndWrittenAgain() throws {
        let fs = SimulatedFileSystem()
        let sealed = try writeSegmented(fs)
        // A damaged index, an index that belongs to another segment, and a missing one.
        fs.corrupt(indexPath(sealed[0]), at: 20)
        let swapped = try #require(fs.bytes(indexPath(sealed[2])))
        let file = try fs.open(indexPath(sealed[1]), create: false)
        try file.truncate(to: 0)
        try file.append(swapped)
        try fs.remove(indexPath(sealed[3]))
        let reader = try BlockLogReader(directory: directory, fileSystem: fs, useSegmentIndexes: true)
        #expect(reader.unindexed.map(\.segment) == [sealed[0], sealed[1], sealed[3]].map { String($0.split(separator: "/").last!) })
        #expect(reader.tip == Self.fixture.tip && reader.executionCertificates == Self.fixture.executionCertificates)
        // Opening the log writes them again; the next start uses every one.
        let log = try BlockLog(directory: directory, fileSystem: fs, segmentBytesMax: 2048)
        #expect(log.tip == Self.fixture.tip)
        let again = try BlockLogReader(directory: directory, fileSystem: fs, useSegmentIndexes: true)
        #expect(again.unindexed.isEmpty && again.tip == Self.fixture.tip)
        #expect(again.executionCertificates == Self.fixture.executionCertificates)
    }

    @Test func repairingDamageRemovesTheIndexesOfWhatItCuts() throws {
        let fs = SimulatedFileSystem()
        let sealed = try writeSegmented(fs)
        // Damage in sealed segment 2, found because its index is gone: the log is cut there.
        try fs.remove(indexPath(sealed[1]))
        let scanned = try BlockLogReader(directory: directory, fileSystem: fs)
        let height = scanned.positions.firstIndex { $0.segment == BlockLogReader.segmentName(2) }! + 2
        fs.corrupt(sealed[1], at: Int(scanned.positions[height - 1].offset) + 40)
        let log = try BlockLog(directory: directory, fileSystem: fs, segmentBytesMax: 2048)
        #expect(log.damage?.height == Height(height))
        try log.truncateDamage()
        for segment in sealed.dropFirst() { #expect(!fs.exists(indexPath(segment))) }
        #expect(fs.exists(indexPath(sealed[0])))
        // Re-appended blocks seal new segments with new indexes, and a restart agrees.
        for entry in Self.fixture.entries[(height - 1)...] {
            try log.append(entry)
            for cert in Self.fixture.executionCertificates where cert.height == entry.block.height { try log.append(cert) }
        }
        try log.sync()
        let reader = try BlockLogReader(directory: directory, fileSystem: fs, useSegmentIndexes: true)
        #expect(reader.unindexed.isEmpty && reader.damage == nil && reader.tip == Self.fixture.tip)
        #expect(reader.executionCertificates == Self.fixture.executionCertificates)
        for entry in Self.fixture.entries { #expect(try reader.entry(at: entry.block.height) == entry) }
    }

    @Test func aRecordThatBreaksTheChainIsDamageEvenWithAValidChecksum() throws {
        let fs = SimulatedFileSystem()
        let log = try BlockLog(directory: directory, fileSystem: fs)
        for entry in Self.fixture.entries.prefix(4) { try log.append(entry) }
        try log.sync()
        // Append a well-formed record holding block 6 where 5 belongs.
        let segment = "\(directory)/\(BlockLogReader.segmentName(1))"
        let file = try fs.open(segment, create: false)
        try file.append(RecordFraming.frame(type: BlockLogRecord.entry.rawValue, payload: Self.fixture.entries[5].encoded()))
        try file.append(RecordFraming.frame(type: BlockLogRecord.entry.rawValue, payload: Self.fixture.entries[6].encoded()))
        try file.sync()
        let reopened = try BlockLog(directory: directory, fileSystem: fs)
        #expect(reopened.height == 4)
        #expect(reopened.damage?.height == 5)
        #expect(reopened.damage?.reason.contains("expected height 5") == true)
    }

    @Test func aRealDirectoryRoundTrips() throws {
        let directory = NSTemporaryDirectory() + "bulwark-log-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let log = try BlockLog(directory: directory, segmentBytesMax: 4096)
        for entry in Self.fixture.entries { try log.append(entry) }
        try log.sync()
        let reopened = try BlockLog(directory: directory)
        #expect(reopened.height == 24 && reopened.tip == Self.fixture.tip)
        var seen: [LedgerEntry] = []
        try BlockLogReader(directory: directory).forEachEntry { seen.append($0) }
        #expect(seen == Self.fixture.entries)
    }
}

@Suite struct WriteAheadLogTests {
    @Test func aTornTailIsDroppedAndDamageRefused() throws {
        let fs = SimulatedFileSystem()
        let wal = try WriteAheadLog(path: "/data/consensus.wal", fileSystem: fs)
        try wal.append([1, 2, 3])
        try wal.append([4, 5])
        try wal.sync()
        try wal.append([6, 7, 8, 9])
        fs.crash(tornBytes: { $0 - 1 })
        #expect(try WriteAheadLog(path: "/data/consensus.wal", fileSystem: fs).records == [[1, 2, 3], [4, 5]])
        fs.corrupt("/data/consensus.wal", at: 9)
        #expect(throws: StorageError.self) { _ = try WriteAheadLog(path: "/data/consensus.wal", fileSystem: fs) }
    }

    /// A synced last record that rots is not mistaken for a write a crash cut short: the vote
    /// it held may have been sent. Whole with a bad checksum, or with a length changed to run
    /// past the end of the file while its bytes still match its checksum, it refuses to open;
    /// cut short by a crash at any byte, it is dropped.
    @Test func aRottedLastRecordIsDamageNotATornTail() throws {
        func opened(_ change: (inout [UInt8]) -> Void) throws -> [[UInt8]] {
            let fs = SimulatedFileSystem()
            let wal = try WriteAheadLog(path: "/data/consensus.wal", fileSystem: fs)
            try wal.append([1, 2, 3])
            try wal.append(Array(repeating: 7, count: 40))
            try wal.sync()
            var bytes = try #require(fs.bytes("/data/consensus.wal"))
            change(&bytes)
            let file = try fs.open("/data/consensus.wal", create: false)
            try file.truncate(to: 0)
            try file.append(bytes)
            try file.sync()
            return try WriteAheadLog(path: "/data/consensus.wal", fileSystem: fs).records
        }
        let last = 12  // the second record's offset: 8 header bytes and 4 of the first record
        for offset in [last + 4, last + 8, last + 30, last + 48] {
            #expect(throws: StorageError.self, "byte \(offset)") { _ = try opened { $0[offset] ^= 0x10 } }
        }
        #expect(throws: StorageError.self) { _ = try opened { $0[last] &+= 1 } }
        for kept in last..<(last + 49) {
            #expect(try opened { $0.removeLast($0.count - kept) } == [[1, 2, 3]], "cut at \(kept)")
        }
    }

    /// Compaction is atomic: a crash at any point leaves the old records or exactly the kept ones.
    @Test func rewriteIsAtomicUnderCrashes() throws {
        let old: [[UInt8]] = (0..<6).map { [UInt8($0), 9] }
        let kept = Array(old.suffix(2))
        for crashAt in 0..<8 {
            let fs = SimulatedFileSystem()
            let wal = try WriteAheadLog(path: "/data/consensus.wal", fileSystem: fs)
            for r in old { try wal.append(r) }
            try wal.sync()
            fs.crashAfterOperations = fs.operations + crashAt
            try? wal.rewrite(keeping: kept)
            fs.crash(tornBytes: { $0 / 2 })
            let records = try WriteAheadLog(path: "/data/consensus.wal", fileSystem: fs).records
            #expect(records == old || records == kept, "crash at \(crashAt): \(records)")
        }
    }
}

@Suite struct SnapshotStoreTests {
    @Test func keepsTheNewestIntactSnapshots() throws {
        let fs = SimulatedFileSystem()
        let store = try SnapshotStore(directory: "/data/snapshots", fileSystem: fs)
        var fixture = LedgerFixture.ledger(blocks: 4)
        try store.save(fixture.state.snapshot(), height: 4)
        fixture.addBlock([.put(key: [1], value: [1])])
        try store.save(fixture.state.snapshot(), height: 5)
        fixture.addBlock([.put(key: [2], value: [2])])
        try store.save(fixture.state.snapshot(), height: 6)
        #expect(try store.heights() == [5, 6])
        let latest = try #require(try store.latest { _, bytes in bytes })
        #expect(latest.height == 6)
        var restored = try KeyValueState(snapshot: latest.value, cluster: fixture.config.clusterID,
                                         history: fixture.state.historyStore)
        #expect(restored.stateRoot == fixture.stateRoot)
        fs.corrupt("/data/snapshots/\(SnapshotStore.name(6))", at: 30)
        var skipped: [Height] = []
        #expect(try store.latest(skipped: { height, _ in skipped.append(height) }) { _, bytes in bytes }?.height == 5)
        #expect(skipped == [6], "the damaged snapshot is reported")
        #expect(try store.latest(atOrBelow: 5) { _, bytes in bytes }?.height == 5)
    }
}

extension SnapshotStoreTests {
    /// Found in Bulwark: a snapshot over 256 MiB was written but never loaded (the record
    /// reader's limit), and one over 4 GiB trapped narrowing its length. Now the largest one
    /// written loads, and a larger one is refused with a sentence instead of written.
    @Test func everySnapshotWrittenLoads() throws {
        let fs = SimulatedFileSystem()
        let store = try SnapshotStore(directory: "/data/snapshots", fileSystem: fs)
        let largest = [UInt8](repeating: 7, count: SnapshotStore.snapshotBytesMax)
        try store.save(largest, height: 16)
        #expect(try store.latest { _, bytes in bytes.count }?.value == largest.count)
        #expect(throws: StorageError.self) { try store.save(largest + [0], height: 32) }
        #expect(try store.heights() == [16], "nothing written for the refused one")
    }
}

@Suite struct FileKeyHistoryTests {
    static let cluster = ClusterID(raw: .zero)
    static let client = PrivateKey(seed: Array(repeating: 7, count: 32))!

    /// Executes `count` blocks of writes to a few keys (puts, adds, deletes) from `state`'s height on.
    static func execute(_ state: inout KeyValueState, blocks count: Int) throws {
        for _ in 0..<count {
            let height = state.height + 1
            let ops: [LedgerOperation] = (0..<5).map { i in
                switch (Int(height) + i) % 4 {
                case 0: return .put(key: [UInt8(i % 3)], value: Array(repeating: UInt8(truncatingIfNeeded: height), count: i * 40))
                case 1: return .add(key: [9], delta: 1, min: 0, max: 1000)
                case 2: return .delete(key: [UInt8(i % 3)])
                default: return .history(key: [UInt8(i % 3)], limit: 3)
                }
            }
            let requests = ops.enumerated().map { i, op in
                Request.signed(by: client, cluster: cluster, requestID: height * 10 + UInt64(i), operation: op)
            }
            _ = try state.execute(Block(header: BlockHeader(clusterID: cluster, height: height, view: 0, timestampMs: 0, proposer: 0,
                                                            prevBlockHash: .zero, txRoot: .zero, historyRoot: .zero),
                                        requests: requests))
            if let file = state.historyStore as? FileKeyHistory { try file.flush() }
        }
    }

    /// A state whose histories live in a file executes exactly as one with them in memory, and
    /// a snapshot plus the file, trimmed to the snapshot's end after a crash, resumes it.
    @Test func aFileStoreMatchesMemoryAndResumesFromASnapshot() throws {
        let fs = SimulatedFileSystem()
        let parameters = ProtocolParameters()
        var inMemory = KeyValueState(genesis: .testGenesis(cluster: testCluster, parameters: parameters))
        var onFile = KeyValueState(genesis: .testGenesis(cluster: testCluster, parameters: parameters), history: try FileKeyHistory(path: "/h", valueBytesMax: 1000, fileSystem: fs))
        try Self.execute(&inMemory, blocks: 12)
        try Self.execute(&onFile, blocks: 12)
        #expect(onFile.stateRoot == inMemory.stateRoot)
        for key: [UInt8] in [[0], [1], [2], [9]] { #expect(try onFile.history(of: key) == inMemory.history(of: key)) }
        let snapshot = onFile.snapshot()
        try (onFile.historyStore as! FileKeyHistory).sync()
        // Later entries reach the file but are never synced; the crash keeps some of them, torn.
        try Self.execute(&onFile, blocks: 5)
        try Self.execute(&inMemory, blocks: 5)
        fs.crash(tornBytes: { $0 / 3 })
        let reopened = try FileKeyHistory(path: "/h", valueBytesMax: 1000, fileSystem: fs)
        var resumed = try KeyValueState(snapshot: snapshot, cluster: testCluster, history: reopened)
        try reopened.truncate(to: resumed.historyEnd)
        try Self.execute(&resumed, blocks: 5)
        #expect(resumed.stateRoot == inMemory.stateRoot)
        for key: [UInt8] in [[0], [1], [2], [9]] { #expect(try resumed.history(of: key) == inMemory.history(of: key)) }
        // A file that lost what the snapshot names is refused, not read past its end.
        try reopened.truncate(to: 10)
        #expect(throws: CodecError.self) { _ = try KeyValueState(snapshot: snapshot, cluster: testCluster, history: reopened) }
    }

    /// Damage in the file is reported when the entry is read, never returned as data.
    @Test func damageIsReportedNotRead() throws {
        let fs = SimulatedFileSystem()
        var state = KeyValueState(genesis: .testGenesis(cluster: testCluster, parameters: ProtocolParameters()), history: try FileKeyHistory(path: "/h", valueBytesMax: 1000, fileSystem: fs))
        try Self.execute(&state, blocks: 8)
        let head = try #require(state.historyHeads[[0]])
        fs.corrupt("/h", at: Int(head) + 12)
        let reopened = try FileKeyHistory(path: "/h", valueBytesMax: 1000, fileSystem: fs)
        #expect(throws: KeyHistoryError.self) { _ = try reopened.read(at: head) }
        // A position that is not an entry's start does not decode as one.
        #expect(throws: KeyHistoryError.self) { _ = try reopened.read(at: head + 1) }
        #expect(throws: KeyHistoryError.self) { _ = try reopened.read(at: reopened.end + 100) }
        // Executing a history read over the damaged entry fails instead of answering.
        let damaged = try KeyValueState(snapshot: state.snapshot(), cluster: testCluster, history: reopened)
        #expect(throws: KeyHistoryError.self) { _ = try damaged.history(of: [0]) }
    }
}

/// CRC-32C against the published vectors (RFC 3720 B.4) and a bit-at-a-time reference at every
/// length and alignment, since the fast path reads eight bytes at a time.
@Suite struct CRC32CTests {
    static func reference(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = ~0
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
        }
        return ~crc
    }

    @Test func publishedVectors() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksum([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
        #expect(CRC32C.checksum([UInt8](repeating: 0xff, count: 32)) == 0x62A8_AB43)
        #expect(CRC32C.checksum((0..<32).map { UInt8($0) }) == 0x46DD_794E)
        #expect(CRC32C.checksum((0..<32).map { UInt8(31 - $0) }) == 0x113F_DB5C)
    }

    @Test func everyLengthAndAlignmentMatchesTheReference() {
        var x: UInt32 = 0x1234_5678
        let bytes = (0..<200).map { _ -> UInt8 in
            x = x &* 1_664_525 &+ 1_013_904_223
            return UInt8(x >> 24)
        }
        for start in 0..<9 {
            for end in start...bytes.count {
                let slice = Array(bytes[start..<end])
                #expect(CRC32C.checksum(bytes[start..<end]) == Self.reference(slice))
            }
        }
    }
}

/// The cluster of states built here without a configuration.
let testCluster = ClusterID(raw: Bytes32(Array(repeating: 0x7e, count: 32))!)
