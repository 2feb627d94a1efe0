import BulwarkConsensus
import BulwarkCore
import BulwarkStorage

/// The consensus write-ahead log with its records decoded once: one list of records, each
/// with the bytes stored for it, so compaction keeps exactly the records it decided on. Its
/// first record names the cluster and the replica key it belongs to, and the stable
/// checkpoint it was last compacted at (SPEC.md §14.3): a log of another key or cluster,
/// swapped in beside this replica's ledger, stops start-up.
struct ConsensusJournal {
    let wal: WriteAheadLog
    private(set) var entries: [(record: WALRecord, bytes: [UInt8])]
    let cluster: ClusterID
    let key: PublicKey
    /// The stable checkpoint of the last compaction: no record at or below it is kept.
    private(set) var compactedThrough: Height
    /// Set once the replica rejoined after losing its disk (SPEC.md §14.4): what it must never
    /// sign. Kept in the owner record, so compaction cannot drop it.
    private(set) var signingFloor: SigningFloor?

    var records: [WALRecord] { entries.map(\.record) }
    /// The log held no record when opened, not even its owner's: this replica never ran
    /// from it (one that ran has claimed it, `claim`, before signing anything, since every
    /// message it signs is written here before it is sent).
    let isNew: Bool

    static let identityTag = WALTag.identity.rawValue

    static func identity(cluster: ClusterID, key: PublicKey, compactedThrough: Height, floor: SigningFloor?) -> [UInt8] {
        var w = CanonicalWriter()
        w.write(identityTag)
        w.write(cluster)
        w.write(key)
        w.write(compactedThrough)
        if let floor {
            w.write(floor.epoch)
            w.write(floor.view)
            w.write(floor.height)
        }
        return w.bytes
    }

    var identity: [UInt8] {
        Self.identity(cluster: cluster, key: key, compactedThrough: compactedThrough, floor: signingFloor)
    }

    /// tag, cluster and key: what must match.
    static let ownerBytes = 1 + ClusterID.byteCount + 32

    init(path: String, fileSystem: any FileSystem, cluster: ClusterID, key: PublicKey) throws {
        do { wal = try WriteAheadLog(path: path, fileSystem: fileSystem) } catch {
            throw NodeStartupError("the write-ahead log \(path) is unreadable (\(error)); refusing to start rather than risk signing twice. Move it aside and start the replica with --rejoin")
        }
        self.cluster = cluster
        self.key = key
        isNew = wal.records.isEmpty
        compactedThrough = 0
        let owner = Array(Self.identity(cluster: cluster, key: key, compactedThrough: 0, floor: nil).prefix(Self.ownerBytes))
        var stored = wal.records
        if let first = stored.first, first.first == Self.identityTag {
            guard first.count == Self.ownerBytes + 8 || first.count == Self.ownerBytes + 32,
                  Array(first.prefix(Self.ownerBytes)) == owner else {
                let named = first.count >= Self.ownerBytes ? " (it names key \(Hex.encode(Array(first[(1 + ClusterID.byteCount)..<Self.ownerBytes])).prefix(8))…)" : ""
                throw NodeStartupError("the write-ahead log \(path) belongs to another replica key or cluster\(named), not key \(key.short)… of cluster \(cluster.hex.prefix(8))…; refusing to start rather than risk signing twice")
            }
            var r = CanonicalReader(Array(first.dropFirst(Self.ownerBytes)))
            compactedThrough = (try? r.readUInt64("compacted through")) ?? 0
            if first.count == Self.ownerBytes + 32 {
                do {
                    signingFloor = SigningFloor(epoch: try r.readUInt64("floor epoch"), view: try r.readUInt64("floor view"),
                                                height: try r.readUInt64("floor height"))
                } catch {
                    throw NodeStartupError("the write-ahead log \(path) holds an unreadable signing floor (\(error)); refusing to start rather than risk signing twice")
                }
            }
            stored.removeFirst()
        }
        do { entries = try stored.map { (try WALRecord(decoding: $0), $0) } } catch {
            throw NodeStartupError("the write-ahead log \(path) holds an undecodable record (\(error)); refusing to start rather than risk signing twice")
        }
        // One written before logs named their owner gets the owner record now; a new one
        // once the replica claims it.
        if !isNew { try claim() }
    }

    /// Writes the owner record if the log lacks it: from then on the log says this replica
    /// ran from it. A replica that asks its peers before starting a new cluster claims its
    /// log only once it starts (a refused start leaves the directory as empty as it found it).
    mutating func claim() throws {
        guard wal.records.first != identity else { return }
        do { try wal.rewrite(keeping: [identity] + entries.map(\.bytes)) } catch {
            throw NodeStartupError("cannot write the write-ahead log \(wal.path): \(error)")
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
        let through = max(compactedThrough, stable)
        try wal.rewrite(keeping: [Self.identity(cluster: cluster, key: key, compactedThrough: through, floor: signingFloor)]
            + kept.map(\.bytes))
        compactedThrough = through
        entries = kept
    }

    /// Records `floor` in the owner record, durably (the log is rewritten atomically and its
    /// directory synced), before the replica signs anything under it.
    mutating func setFloor(_ floor: SigningFloor) throws(StorageError) {
        try wal.rewrite(keeping: [Self.identity(cluster: cluster, key: key, compactedThrough: compactedThrough, floor: floor)]
            + entries.map(\.bytes))
        signingFloor = floor
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

extension ConsensusJournal {
    /// Why this log is older than the ledger beside it, if it is: a commit certificate in the
    /// ledger above both its newest stable checkpoint and the log's last compaction carries
    /// this replica's vote (`id`) at a height the log has no record of having signed. Such a
    /// log was restored from an old copy, or belongs to an earlier life of this replica:
    /// signing on from it could sign twice.
    ///
    /// A new log (this replica never ran from it) is older than any ledger holding this
    /// replica's vote in this epoch, stable or not: the lost log may have held votes above the
    /// ledger's end (SPEC.md §14.3). A replica that never voted here (a joiner) starts.
    func olderThan(_ blockLog: BlockLog, id: ReplicaID, epochBase: Height) -> String? {
        // Votes at or below a signing floor are the earlier life's, which the floor covers.
        let stable = isNew ? epochBase : max(blockLog.latestExecutionCertificate?.height ?? 0, epochBase, compactedThrough,
                                             signingFloor?.height ?? 0)
        guard blockLog.height > stable else { return nil }
        var signed = Set<Height>()
        for record in records {
            if case let .sent(.commit(commit)) = record { signed.insert(commit.height) }
        }
        // Newest first: a replica that ran votes in its newest blocks, so the search is short.
        for height in stride(from: blockLog.height, through: stable + 1, by: -1) {
            guard let entry = try? blockLog.entry(at: height) else { continue }
            if entry.certificate.votes.contains(where: { $0.replica == id }), !signed.contains(height) {
                if isNew {
                    return "the write-ahead log is missing beside a ledger holding this replica's commit vote at height \(height): the votes it recorded above the ledger's end are lost; refusing to start rather than risk signing twice. Restore the log that belongs with this ledger, or start the replica with --rejoin"
                }
                return "the ledger holds this replica's commit vote at height \(height), which its write-ahead log has no record of: the log is older than the ledger (restored from a copy?); refusing to start rather than risk signing twice. Restore the log that belongs with this ledger, or start the replica with --rejoin"
            }
        }
        return nil
    }
}
