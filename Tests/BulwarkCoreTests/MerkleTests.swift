import BulwarkCore
import Testing

@Suite struct MerkleTests {
    func leaves(_ n: Int) -> [Digest] { (0..<n).map { MerkleTree.leafHash([UInt8(truncatingIfNeeded: $0), 0x5a]) } }

    /// For every tree size up to 40: generated inclusion proofs verify, and fail for any other
    /// index, a flipped hash, or a wrong root.
    @Test func inclusionProofsVerifyAndTamperedOnesFail() throws {
        for size in 1...40 {
            let hashes = leaves(size)
            let root = MerkleTree.root(leafHashes: hashes)
            for index in 0..<size {
                let proof = MerkleTree.inclusionProof(index: index, leafHashes: hashes).map(\.bytes)
                try MerkleTree.verifyInclusion(index: UInt64(index), treeSize: UInt64(size), leafHash: hashes[index].bytes,
                                               proof: proof, root: root.bytes)
                if size > 1 {
                    #expect(throws: MerkleTree.ProofError.self) {
                        try MerkleTree.verifyInclusion(index: UInt64((index + 1) % size), treeSize: UInt64(size),
                                                       leafHash: hashes[index].bytes, proof: proof, root: root.bytes)
                    }
                }
                if let first = proof.first {
                    var flipped = proof
                    flipped[0] = first.enumerated().map { $0.offset == 0 ? $0.element ^ 1 : $0.element }
                    #expect(throws: MerkleTree.ProofError.rootMismatch) {
                        try MerkleTree.verifyInclusion(index: UInt64(index), treeSize: UInt64(size),
                                                       leafHash: hashes[index].bytes, proof: flipped, root: root.bytes)
                    }
                }
                #expect(throws: MerkleTree.ProofError.rootMismatch) {
                    try MerkleTree.verifyInclusion(index: UInt64(index), treeSize: UInt64(size),
                                                   leafHash: hashes[index].bytes, proof: proof, root: Digest.zero.bytes)
                }
            }
        }
    }

    @Test func consistencyProofsVerifyForEveryPairOfSizes() throws {
        let hashes = leaves(33)
        for newSize in 1...33 {
            let newRoot = MerkleTree.root(leafHashes: hashes.prefix(newSize)).bytes
            for oldSize in 1...newSize {
                let oldRoot = MerkleTree.root(leafHashes: hashes.prefix(oldSize)).bytes
                let proof = MerkleTree.consistencyProof(oldSize: oldSize, leafHashes: Array(hashes.prefix(newSize)))
                try MerkleTree.verifyConsistency(oldSize: UInt64(oldSize), newSize: UInt64(newSize), oldRoot: oldRoot,
                                                 newRoot: newRoot, proof: proof.map(\.bytes))
                if oldSize < newSize {
                    // A different old history is not consistent with this new tree.
                    var forkedOld = Array(hashes.prefix(oldSize))
                    forkedOld[oldSize - 1] = Digest.zero
                    #expect(throws: MerkleTree.ProofError.self) {
                        try MerkleTree.verifyConsistency(oldSize: UInt64(oldSize), newSize: UInt64(newSize),
                                                         oldRoot: MerkleTree.root(leafHashes: forkedOld).bytes,
                                                         newRoot: newRoot, proof: proof.map(\.bytes))
                    }
                }
            }
        }
    }

    @Test func accumulatorMatchesTheTreeAndRestores() throws {
        let hashes = leaves(100)
        var acc = MerkleAccumulator()
        #expect(acc.root == MerkleTree.emptyRoot)
        for (i, leaf) in hashes.enumerated() {
            acc.append(leafHash: leaf)
            #expect(acc.size == UInt64(i + 1))
            #expect(acc.root == MerkleTree.root(leafHashes: hashes.prefix(i + 1)))
        }
        let restored = try #require(MerkleAccumulator(size: acc.size, peaks: acc.peaks))
        #expect(restored == acc)
        #expect(MerkleAccumulator(size: 3, peaks: [Digest.zero]) == nil)
    }
}
