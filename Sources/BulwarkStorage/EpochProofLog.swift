import BulwarkCore

/// `epochs.log` in the data directory (SPEC.md §13.4): for every epoch boundary this replica
/// executed, the governance of the state right after it, with its path in the map. Together
/// with the boundary's execution certificate from the block log it is the `EpochProof` that
/// lets a client follow configuration changes from cluster.json alone. The map at a boundary
/// is gone once later blocks execute, so the proof is taken then and kept here.
///
/// Derived from the ledger: replaying the log from genesis writes it again, so damage is cut
/// off rather than fatal, and a boundary missing from it only means this replica cannot
/// prove that step (another replica can).
public final class EpochProofLog {
    static let recordType: UInt8 = 1
    /// A governance proof is a configuration and a map path: far below this.
    static let recordBytesMax = 4 << 20

    let path: String
    let fileSystem: any FileSystem
    /// By the epoch the proven governance is in (the epoch that began at the boundary).
    public private(set) var proofs: [UInt64: GovernanceProof] = [:]

    /// Opens (or creates) the file at `path`, keeping every whole, decodable record and cutting
    /// the file after the last of them.
    public init(path: String, fileSystem: any FileSystem) throws(StorageError) {
        self.path = path
        self.fileSystem = fileSystem
        let created = !fileSystem.exists(path)
        let file = try fileSystem.open(path, create: true)
        defer { file.close() }
        if created {
            try fileSystem.syncDirectory(parentDirectory(of: path))
            return
        }
        let size = try file.size()
        guard size <= UInt64(Self.recordBytesMax) * 64 else {
            // Far larger than any real history of epochs: start over rather than read it.
            try file.truncate(to: 0)
            return
        }
        let (records, ending) = RecordFraming.scan(try file.read(at: 0, count: Int(size)))
        var end: UInt64 = 0
        for record in records {
            guard record.type == Self.recordType, record.payload.count <= Self.recordBytesMax,
                  let proof = try? GovernanceProof(decoding: record.payload) else { break }
            proofs[proof.governance.epoch] = proof
            end = record.end
        }
        if ending != .clean || end < size { try file.truncate(to: end) }
    }

    /// Records the proof taken right after a boundary executed, durably.
    public func record(_ proof: GovernanceProof) throws(StorageError) {
        guard proofs[proof.governance.epoch] != proof else { return }
        proofs[proof.governance.epoch] = proof
        let file = try fileSystem.open(path, create: true)
        defer { file.close() }
        try file.append(RecordFraming.frame(type: Self.recordType, payload: proof.encoded()))
        try file.sync()
    }
}
