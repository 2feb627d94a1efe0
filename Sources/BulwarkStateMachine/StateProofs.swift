import BulwarkCore

/// Proofs and snapshots of the state, built where the state lives.
extension KeyValueState {
    /// This state's map, kept for proofs about this height later.
    public var provable: ProvableState {
        mutating get {
            settle()
            return ProvableState(cluster: cluster, height: height, map: map)
        }
    }

    /// A proof of what `key` held at `past.height`; `past` must come from this state's history.
    public func prove(_ key: [UInt8], at past: ProvableState) throws(KeyHistoryError) -> KeyProof {
        precondition(past.height <= height, "a proof about a height this state has not reached")
        return try proofSource(for: key).prove(at: past)
    }

    /// What a proof about `key` needs from this state, taken in O(1): the key's newest history
    /// position and the store. The rest of the work (walking the history back, hashing the
    /// path) needs nothing else from the state, so it can run on another thread while this
    /// state executes on: the store only grows, and entries once written never change.
    public func proofSource(for key: [UInt8]) -> ProofSource {
        ProofSource(key: key, height: height, head: historyHeads[key], store: historyStore)
    }
}

extension KeyValueState {
    static let snapshotVersion: UInt8 = 5

    public func snapshot() -> [UInt8] {
        var settled = self
        settled.settle() // no work when the state was settled at its checkpoint
        var w = CanonicalWriter(capacity: 64 + records.count * 48)
        w.write(Self.snapshotVersion)
        w.write(height)
        w.write(governance)
        w.write(policy)
        let keys = records.keys.sorted { $0.lexicographicallyPrecedes($1) }
        w.write(UInt64(keys.count))
        for key in keys {
            let record = records[key]!
            w.writeBytes(key)
            w.writeBytes(record.value)
            w.write(record.version)
        }
        let clientKeys = clients.keys.sorted()
        w.write(UInt64(clientKeys.count))
        for client in clientKeys {
            let record = clients[client]!
            w.write(client)
            w.write(record.requestID)
            w.write(record.result)
            w.write(record.height)
        }
        w.write(historyEnd)
        let historyKeys = historyHeads.keys.sorted { $0.lexicographicallyPrecedes($1) }
        w.write(UInt64(historyKeys.count))
        for key in historyKeys {
            w.writeBytes(key)
            w.write(historyHeads[key]!)
        }
        w.write(settled.stateRoot)
        // The state root does not cover history positions; a digest of every byte does.
        w.write(Digest.sha256(w.bytes))
        return w.bytes
    }

    /// Rebuilds a state from `snapshot()` bytes, checking the digest of the whole snapshot and
    /// the stored state root against the rebuilt one, so a damaged snapshot is refused rather
    /// than loaded. `history` must hold at least the snapshot's history end; entries past it
    /// are not this state's, and the caller trims them before executing further.
    /// A snapshot of another cluster's state is refused.
    public init(snapshot bytes: [UInt8], cluster: ClusterID, history: any KeyHistoryStore) throws(CodecError) {
        guard bytes.count >= Digest.byteCount,
              Digest.sha256(Array(bytes.dropLast(Digest.byteCount))).bytes == Array(bytes.suffix(Digest.byteCount)) else {
            throw .invalidValue(field: "state snapshot", reason: "checksum does not match its contents")
        }
        var r = CanonicalReader(Array(bytes.dropLast(Digest.byteCount)))
        try r.readVersion("state snapshot", supported: Self.snapshotVersion)
        let snapshotHeight = try r.readUInt64("height")
        let governance = try r.read(Governance.self)
        guard governance.config.clusterID == cluster else {
            throw .invalidValue(field: "state snapshot", reason: "it is a state of cluster \(governance.config.clusterID), not \(cluster)")
        }
        self.init(genesis: governance.config, history: history)
        restoreGovernance(governance)
        restorePolicy(try r.read(Policy.self))
        // Every entry takes more than one byte, so counts above the input size are corrupt.
        func count(_ field: String) throws(CodecError) -> Int {
            let n = try r.readUInt64(field)
            guard n <= UInt64(r.remaining) else { throw .tooLarge(field: field, length: Int(clamping: n), max: r.remaining) }
            return Int(n)
        }
        var previous: [UInt8]?
        for _ in 0..<(try count("record count")) {
            let key = try r.readKey()
            if let previous, !previous.lexicographicallyPrecedes(key) {
                throw .invalidValue(field: "snapshot keys", reason: "not strictly increasing")
            }
            previous = key
            let record = Record(value: try r.readValue(), version: try r.readUInt64("version"))
            restoreRecord(key, record)
        }
        var previousClient: PublicKey?
        for _ in 0..<(try count("client count")) {
            let client = try r.readPublicKey("client")
            if let previousClient, !(previousClient < client) {
                throw .invalidValue(field: "snapshot clients", reason: "not strictly increasing")
            }
            previousClient = client
            let record = ClientRecord(requestID: try r.readUInt64("request id"), result: try r.read(OperationResult.self),
                                      height: try r.readUInt64("height"))
            restoreClient(client, record)
        }
        let end = try r.readUInt64("history end")
        guard end <= history.end else {
            throw .invalidValue(field: "state snapshot", reason: "its key histories end at \(end), past the history store's end \(history.end)")
        }
        var heads: [[UInt8]: UInt64] = [:]
        var previousKey: [UInt8]?
        for _ in 0..<(try count("history count")) {
            let key = try r.readKey()
            if let previousKey, !previousKey.lexicographicallyPrecedes(key) {
                throw .invalidValue(field: "snapshot history keys", reason: "not strictly increasing")
            }
            previousKey = key
            let head = try r.readUInt64("history position")
            guard head < end else { throw .invalidValue(field: "history position", reason: "\(head) is past the history end \(end)") }
            heads[key] = head
        }
        restoreHistory(heads: heads, end: end)
        let storedRoot = try r.readDigest("state root")
        try r.finish()
        restoreHeight(snapshotHeight)
        guard stateRoot == storedRoot else {
            throw .invalidValue(field: "state snapshot", reason: "state root does not match its contents")
        }
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
