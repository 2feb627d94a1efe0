import BulwarkConsensus
import BulwarkCore
import BulwarkStorage

/// The consensus write-ahead log with its records decoded once: one list of records, each
/// with the bytes stored for it, so compaction keeps exactly the records it decided on.
struct ConsensusJournal {
    let wal: WriteAheadLog
    private(set) var entries: [(record: WALRecord, bytes: [UInt8])]

    var records: [WALRecord] { entries.map(\.record) }

    init(path: String, fileSystem: any FileSystem) throws {
        do { wal = try WriteAheadLog(path: path, fileSystem: fileSystem) } catch {
            throw NodeStartupError("the write-ahead log \(path) is unreadable (\(error)); refusing to start rather than risk signing twice")
        }
        do { entries = try wal.records.map { (try WALRecord(decoding: $0), $0) } } catch {
            throw NodeStartupError("the write-ahead log \(path) holds an undecodable record (\(error)); refusing to start rather than risk signing twice")
        }
    }

    /// Appends records; durable only after `sync`.
    mutating func append(_ records: [WALRecord]) throws(StorageError) {
        let encoded = records.map { ($0, $0.encoded()) }
        try wal.append(contentsOf: encoded.map(\.1))
        entries.append(contentsOf: encoded)
    }

    func sync() throws(StorageError) { try wal.sync() }

    /// Drops what a stable checkpoint at `stable` made unnecessary (atomically on disk).
    mutating func compact(stable: Height) throws(StorageError) {
        let keep = Self.kept(records, stable: stable)
        guard keep.count < entries.count else { return }
        let kept = keep.map { entries[$0] }
        try wal.rewrite(keeping: kept.map(\.bytes))
        entries = kept
    }

    /// The compaction rule: records at or below a stable checkpoint are never needed again; of
    /// view-change and new-view records only the newest of each matters. The indices kept.
    static func kept(_ records: [WALRecord], stable: Height) -> [Int] {
        let lastViewChange = records.lastIndex { if case .sent(.viewChange) = $0 { return true } else { return false } }
        let lastNewView = records.lastIndex { record in
            switch record {
            case .sent(.newView), .acceptedNewView: return true
            default: return false
            }
        }
        return records.indices.filter { index in
            if let height = records[index].height { return height > stable }
            return index == lastViewChange || index == lastNewView
        }
    }
}
