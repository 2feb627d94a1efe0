/// RFC 6962 Merkle trees over SHA-256 (RFC 9162 §2.1): leaf hash = SHA-256(0x00 || leaf),
/// node hash = SHA-256(0x01 || left || right), and the tree over n leaves splits at the
/// largest power of two smaller than n. Used for a block's `txRoot` and the ledger's
/// `historyRoot`, with inclusion and consistency proofs as in Certificate Transparency.
public enum MerkleTree {
    /// The root of the empty tree: SHA-256 of no bytes.
    public static let emptyRoot = Digest.sha256([])

    public static func leafHash(_ leaf: UnsafeRawBufferPointer) -> Digest {
        var h = SHA256Hasher()
        withUnsafeBytes(of: UInt8(0)) { h.update($0) }
        h.update(leaf)
        return h.finalize()
    }

    public static func leafHash(_ leaf: [UInt8]) -> Digest { leaf.withUnsafeBytes { leafHash($0) } }
    public static func leafHash(_ leaf: Digest) -> Digest { leaf.withUnsafeBytes { leafHash($0) } }

    public static func nodeHash(_ left: Digest, _ right: Digest) -> Digest {
        // One 65-byte stack buffer, hashed in one call: hashing is cheapest on whole buffers.
        withUnsafeTemporaryAllocation(byteCount: 65, alignment: 8) { buffer in
            buffer[0] = 1
            left.withUnsafeBytes { UnsafeMutableRawBufferPointer(rebasing: buffer[1..<33]).copyMemory(from: $0) }
            right.withUnsafeBytes { UnsafeMutableRawBufferPointer(rebasing: buffer[33..<65]).copyMemory(from: $0) }
            return Digest.sha256(UnsafeRawBufferPointer(buffer))
        }
    }

    /// The largest power of two strictly smaller than `n` (n ≥ 2).
    static func splitPoint(_ n: Int) -> Int {
        precondition(n >= 2)
        return 1 << (Int.bitWidth - 1 - (n - 1).leadingZeroBitCount)
    }

    /// MTH(D[n]) over already-hashed leaves.
    public static func root(leafHashes: some RandomAccessCollection<Digest>) -> Digest {
        var accumulator = MerkleAccumulator()
        for leaf in leafHashes { accumulator.append(leafHash: leaf) }
        return accumulator.root
    }

    /// PATH(m, D[n]) (RFC 6962 §2.1.1): the audit path for leaf `index`, bottom-up.
    public static func inclusionProof(index: Int, leafHashes: [Digest]) -> [Digest] {
        precondition(index >= 0 && index < leafHashes.count, "leaf index out of range")
        var proof: [Digest] = []
        path(index, leafHashes[...], into: &proof)
        return proof
    }

    private static func path(_ m: Int, _ leaves: ArraySlice<Digest>, into proof: inout [Digest]) {
        let n = leaves.count
        guard n > 1 else { return }
        let k = splitPoint(n)
        let start = leaves.startIndex
        if m < k {
            path(m, leaves[start..<start + k], into: &proof)
            proof.append(root(leafHashes: leaves[(start + k)...]))
        } else {
            path(m - k, leaves[(start + k)...], into: &proof)
            proof.append(root(leafHashes: leaves[start..<start + k]))
        }
    }

    /// PROOF(m, D[n]) (RFC 6962 §2.1.2): proves the tree over the first `oldSize` leaves is a
    /// prefix of the tree over all of `leafHashes`.
    public static func consistencyProof(oldSize: Int, leafHashes: [Digest]) -> [Digest] {
        precondition(oldSize >= 1 && oldSize <= leafHashes.count, "old size out of range")
        var proof: [Digest] = []
        subproof(oldSize, leafHashes[...], complete: true, into: &proof)
        return proof
    }

    private static func subproof(_ m: Int, _ leaves: ArraySlice<Digest>, complete: Bool, into proof: inout [Digest]) {
        let n = leaves.count
        if m == n {
            if !complete { proof.append(root(leafHashes: leaves)) }
            return
        }
        let k = splitPoint(n)
        let start = leaves.startIndex
        if m <= k {
            subproof(m, leaves[start..<start + k], complete: complete, into: &proof)
            proof.append(root(leafHashes: leaves[(start + k)...]))
        } else {
            subproof(m - k, leaves[(start + k)...], complete: false, into: &proof)
            proof.append(root(leafHashes: leaves[start..<start + k]))
        }
    }

    public enum ProofError: Error, Equatable, Sendable, CustomStringConvertible {
        case indexOutOfRange(index: UInt64, size: UInt64)
        case sizesOutOfOrder(old: UInt64, new: UInt64)
        case emptyOldTree
        case malformedHash
        case wrongProofLength
        case rootMismatch

        public var description: String {
            switch self {
            case let .indexOutOfRange(index, size): return "leaf index \(index) is not below tree size \(size)"
            case let .sizesOutOfOrder(old, new): return "old tree size \(old) is larger than new size \(new)"
            case .emptyOldTree: return "a consistency proof from the empty tree proves nothing"
            case .malformedHash: return "a hash in the proof is not 32 bytes"
            case .wrongProofLength: return "the proof has the wrong number of hashes for these sizes"
            case .rootMismatch: return "the proof does not lead to the expected root"
            }
        }
    }

    /// Verifies an inclusion proof (RFC 9162 §2.1.3.2). Hashes are raw byte strings so that a
    /// proof from any source can be checked; each must be 32 bytes.
    public static func verifyInclusion(index: UInt64, treeSize: UInt64, leafHash: [UInt8], proof: [[UInt8]],
                                       root: [UInt8]) throws(ProofError) {
        guard index < treeSize else { throw .indexOutOfRange(index: index, size: treeSize) }
        guard let leaf = Digest(leafHash) else { throw .malformedHash }
        let path = try digests(proof)
        var fn = index
        var sn = treeSize - 1
        var r = leaf
        for p in path {
            guard sn != 0 else { throw .wrongProofLength }
            if fn & 1 == 1 || fn == sn {
                r = nodeHash(p, r)
                while fn & 1 == 0 && fn != 0 {
                    fn >>= 1
                    sn >>= 1
                }
            } else {
                r = nodeHash(r, p)
            }
            fn >>= 1
            sn >>= 1
        }
        guard sn == 0 else { throw .wrongProofLength }
        guard r.bytes == root else { throw .rootMismatch }
    }

    /// Verifies a consistency proof (RFC 9162 §2.1.4.2).
    public static func verifyConsistency(oldSize: UInt64, newSize: UInt64, oldRoot: [UInt8], newRoot: [UInt8],
                                         proof: [[UInt8]]) throws(ProofError) {
        guard oldSize <= newSize else { throw .sizesOutOfOrder(old: oldSize, new: newSize) }
        guard oldSize > 0 else { throw .emptyOldTree }
        if oldSize == newSize {
            guard proof.isEmpty else { throw .wrongProofLength }
            guard oldRoot == newRoot else { throw .rootMismatch }
            return
        }
        guard !proof.isEmpty else { throw .wrongProofLength }
        var path = try digests(proof)
        // When the old tree is a complete subtree, its root is the proof's implicit first node.
        if oldSize & (oldSize - 1) == 0 {
            guard let old = Digest(oldRoot) else { throw .rootMismatch }
            path.insert(old, at: 0)
        }
        var fn = oldSize - 1
        var sn = newSize - 1
        while fn & 1 == 1 {
            fn >>= 1
            sn >>= 1
        }
        var fr = path[0]
        var sr = path[0]
        for c in path.dropFirst() {
            guard sn != 0 else { throw .wrongProofLength }
            if fn & 1 == 1 || fn == sn {
                fr = nodeHash(c, fr)
                sr = nodeHash(c, sr)
                while fn & 1 == 0 && fn != 0 {
                    fn >>= 1
                    sn >>= 1
                }
            } else {
                sr = nodeHash(sr, c)
            }
            fn >>= 1
            sn >>= 1
        }
        guard sn == 0 else { throw .wrongProofLength }
        guard fr.bytes == oldRoot, sr.bytes == newRoot else { throw .rootMismatch }
    }

    private static func digests(_ hashes: [[UInt8]]) throws(ProofError) -> [Digest] {
        var out: [Digest] = []
        out.reserveCapacity(hashes.count)
        for h in hashes {
            guard let d = Digest(h) else { throw .malformedHash }
            out.append(d)
        }
        return out
    }
}

/// An append-only RFC 6962 tree that keeps only the roots of its maximal complete subtrees
/// (one per set bit of `size`): O(log n) memory, amortised O(1) hashes per append and
/// O(log n) to compute the root. The ledger's `historyRoot` is this over block hashes.
public struct MerkleAccumulator: Hashable, Sendable {
    public private(set) var size: UInt64 = 0
    /// Roots of the complete subtrees, largest (leftmost) first.
    public private(set) var peaks: [Digest] = []

    public init() {}

    /// Rebuilds an accumulator from saved state; nil if `peaks` cannot belong to `size`.
    public init?(size: UInt64, peaks: [Digest]) {
        guard peaks.count == size.nonzeroBitCount else { return nil }
        self.size = size
        self.peaks = peaks
    }

    public mutating func append(leafHash: Digest) {
        var node = leafHash
        // Each trailing 1 bit of the old size is a complete subtree of the same height as the
        // growing node: merge them, right to left.
        var s = size
        while s & 1 == 1 {
            node = MerkleTree.nodeHash(peaks.removeLast(), node)
            s >>= 1
        }
        peaks.append(node)
        size += 1
    }

    /// MTH over every leaf appended so far.
    public var root: Digest {
        guard var acc = peaks.last else { return MerkleTree.emptyRoot }
        for peak in peaks.dropLast().reversed() { acc = MerkleTree.nodeHash(peak, acc) }
        return acc
    }
}

extension MerkleAccumulator: CanonicalCodable {
    public func encode(to w: inout CanonicalWriter) {
        w.write(size)
        for peak in peaks { w.write(peak) }
    }

    public init(from r: inout CanonicalReader) throws(CodecError) {
        size = try r.readUInt64("accumulator size")
        // One leaf per block: a size no ledger can reach would overflow the next append.
        guard size <= ProtocolBounds.heightMax else {
            throw .invalidValue(field: "accumulator size", reason: "\(size) exceeds the largest height \(ProtocolBounds.heightMax)")
        }
        peaks = []
        for _ in 0..<size.nonzeroBitCount { peaks.append(try r.readDigest("accumulator peak")) }
    }
}
