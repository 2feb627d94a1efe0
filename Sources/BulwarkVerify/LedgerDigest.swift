import BulwarkCore
import BulwarkStorage

/// A ledger digest to pin: the number of blocks and the RFC 6962 root over their hashes.
/// Written `HEIGHT:ROOTHEX`. Any later ledger can be proven to extend it (consistency), and
/// any block proven to be in it (inclusion).
public struct LedgerDigest: Equatable, Sendable, CustomStringConvertible {
    public var height: Height
    public var root: Digest

    public init(height: Height, root: Digest) {
        self.height = height
        self.root = root
    }

    public init?(parsing text: String) {
        let parts = text.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ":")
        guard parts.count == 2, let height = Height(parts[0]), height > 0, let root = Digest(hex: String(parts[1])) else {
            return nil
        }
        self.init(height: height, root: root)
    }

    public var description: String { "\(height):\(root.hex)" }

    /// The digest of the first `height` blocks of `reader`.
    public static func of(_ reader: BlockLogReader, height: Height) -> LedgerDigest {
        LedgerDigest(height: height, root: MerkleTree.root(leafHashes: leafHashes(reader, height: height)))
    }

    static func leafHashes(_ reader: BlockLogReader, height: Height) -> [Digest] {
        height == 0 ? [] : (1...height).map { MerkleTree.leafHash(reader.blockHash(at: $0)!) }
    }
}

/// Proofs between ledger digests, computed from a log and checked against digests alone.
public enum LedgerProofs {
    public enum Failure: Error, Equatable, CustomStringConvertible {
        case logTooShort(have: Height, need: Height)
        case logDoesNotMatch(LedgerDigest)
        case invalid(MerkleTree.ProofError)

        public var description: String {
            switch self {
            case let .logTooShort(have, need): return "the log has \(have) blocks, \(need) are needed"
            case let .logDoesNotMatch(digest): return "the log's first \(digest.height) blocks do not have digest \(digest)"
            case let .invalid(error): return "the proof does not hold: \(error)"
            }
        }
    }

    /// The consistency proof that `old` is a prefix of `new`, from a log holding `new`.
    public static func consistency(from reader: BlockLogReader, old: LedgerDigest, new: LedgerDigest) throws(Failure) -> [Digest] {
        guard reader.height >= new.height else { throw .logTooShort(have: reader.height, need: new.height) }
        let leaves = LedgerDigest.leafHashes(reader, height: new.height)
        guard MerkleTree.root(leafHashes: leaves) == new.root else { throw .logDoesNotMatch(new) }
        guard old.height <= new.height else { throw .invalid(.sizesOutOfOrder(old: old.height, new: new.height)) }
        return MerkleTree.consistencyProof(oldSize: Int(old.height), leafHashes: leaves)
    }

    public static func verifyConsistency(old: LedgerDigest, new: LedgerDigest, proof: [Digest]) throws(Failure) {
        do {
            try MerkleTree.verifyConsistency(oldSize: old.height, newSize: new.height, oldRoot: old.root.bytes,
                                             newRoot: new.root.bytes, proof: proof.map(\.bytes))
        } catch { throw .invalid(error) }
    }

    /// The inclusion proof of block `height` in the ledger with digest `digest`.
    public static func inclusion(from reader: BlockLogReader, height: Height, digest: LedgerDigest) throws(Failure)
        -> (blockHash: Digest, proof: [Digest])
    {
        guard reader.height >= digest.height else { throw .logTooShort(have: reader.height, need: digest.height) }
        guard height >= 1, height <= digest.height else { throw .invalid(.indexOutOfRange(index: height - 1, size: digest.height)) }
        let leaves = LedgerDigest.leafHashes(reader, height: digest.height)
        guard MerkleTree.root(leafHashes: leaves) == digest.root else { throw .logDoesNotMatch(digest) }
        return (reader.blockHash(at: height)!, MerkleTree.inclusionProof(index: Int(height - 1), leafHashes: leaves))
    }

    public static func verifyInclusion(height: Height, blockHash: Digest, digest: LedgerDigest, proof: [Digest]) throws(Failure) {
        do {
            try MerkleTree.verifyInclusion(index: height - 1, treeSize: digest.height, leafHash: MerkleTree.leafHash(blockHash).bytes,
                                           proof: proof.map(\.bytes), root: digest.root.bytes)
        } catch { throw .invalid(error) }
    }
}
