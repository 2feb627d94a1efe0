import BulwarkCore
import Foundation
import Testing

/// RFC 6962 vectors from transparency-dev/merkle: every happy and must-fail case.
@Suite struct MerkleVectorTests {
    struct InclusionCase: Decodable {
        let leafIdx: UInt64
        let treeSize: UInt64
        let root: String?
        let leafHash: String?
        let proof: [String]?
        let desc: String
        let wantErr: Bool
    }

    struct ConsistencyCase: Decodable {
        let size1: UInt64
        let size2: UInt64
        let root1: String?
        let root2: String?
        let proof: [String]?
        let desc: String
        let wantErr: Bool
    }

    struct ReferenceTree: Decodable {
        let leafInputs: [String]
        let rootHashes: [String]
    }

    static func base64(_ text: String?) -> [UInt8] {
        guard let text, let data = Data(base64Encoded: text) else { return [] }
        return Array(data)
    }

    @Test(.enabled(if: TestData.available, TestData.skipReason))
    func inclusionCases() throws {
        let files = TestData.jsonFiles(under: "rfc6962/inclusion")
        #expect(files.count > 50)
        for file in files {
            let c = try JSONDecoder().decode(InclusionCase.self, from: Data(contentsOf: file))
            var accepted = true
            do {
                try MerkleTree.verifyInclusion(index: c.leafIdx, treeSize: c.treeSize, leafHash: Self.base64(c.leafHash),
                                               proof: (c.proof ?? []).map { Self.base64($0) }, root: Self.base64(c.root))
            } catch {
                accepted = false
            }
            #expect(accepted == !c.wantErr, "\(file.lastPathComponent) (\(c.desc))")
        }
    }

    @Test(.enabled(if: TestData.available, TestData.skipReason))
    func consistencyCases() throws {
        let files = TestData.jsonFiles(under: "rfc6962/consistency")
        #expect(files.count > 50)
        for file in files {
            let c = try JSONDecoder().decode(ConsistencyCase.self, from: Data(contentsOf: file))
            var accepted = true
            do {
                try MerkleTree.verifyConsistency(oldSize: c.size1, newSize: c.size2, oldRoot: Self.base64(c.root1),
                                                 newRoot: Self.base64(c.root2), proof: (c.proof ?? []).map { Self.base64($0) })
            } catch {
                accepted = false
            }
            #expect(accepted == !c.wantErr, "\(file.path) (\(c.desc))")
        }
    }

    @Test(.enabled(if: TestData.available, TestData.skipReason))
    func referenceTreeRootsForEverySize() throws {
        let tree = try JSONDecoder().decode(ReferenceTree.self,
                                            from: Data(contentsOf: TestData.url("rfc6962/reference-tree.json")))
        let leaves = try tree.leafInputs.map { try #require(Hex.decode($0)) }
        #expect(tree.rootHashes.count == leaves.count + 1)
        for (size, expected) in tree.rootHashes.enumerated() {
            let leafHashes = leaves.prefix(size).map { MerkleTree.leafHash($0) }
            #expect(MerkleTree.root(leafHashes: leafHashes).hex == expected, "size \(size)")
            var accumulator = MerkleAccumulator()
            for leaf in leafHashes { accumulator.append(leafHash: leaf) }
            #expect(accumulator.root.hex == expected, "accumulator, size \(size)")
        }
    }

    /// The proofs we generate over the reference leaves are the vectors' happy-path proofs.
    @Test(.enabled(if: TestData.available, TestData.skipReason))
    func generatedProofsMatchHappyPathVectors() throws {
        let tree = try JSONDecoder().decode(ReferenceTree.self,
                                            from: Data(contentsOf: TestData.url("rfc6962/reference-tree.json")))
        let leafHashes = try tree.leafInputs.map { MerkleTree.leafHash(try #require(Hex.decode($0))) }
        var compared = 0
        for file in TestData.jsonFiles(under: "rfc6962/inclusion") where file.lastPathComponent == "happy-path.json" {
            let c = try JSONDecoder().decode(InclusionCase.self, from: Data(contentsOf: file))
            guard c.treeSize <= UInt64(leafHashes.count) else { continue }
            let proof = MerkleTree.inclusionProof(index: Int(c.leafIdx), leafHashes: Array(leafHashes.prefix(Int(c.treeSize))))
            #expect(proof.map(\.bytes) == (c.proof ?? []).map { Self.base64($0) }, "\(file.path)")
            compared += 1
        }
        for file in TestData.jsonFiles(under: "rfc6962/consistency") where file.lastPathComponent == "happy-path.json" {
            let c = try JSONDecoder().decode(ConsistencyCase.self, from: Data(contentsOf: file))
            guard c.size2 <= UInt64(leafHashes.count), c.size1 >= 1 else { continue }
            let proof = MerkleTree.consistencyProof(oldSize: Int(c.size1), leafHashes: Array(leafHashes.prefix(Int(c.size2))))
            #expect(proof.map(\.bytes) == (c.proof ?? []).map { Self.base64($0) }, "\(file.path)")
            compared += 1
        }
        #expect(compared >= 5)
    }
}
