import BulwarkCore
import BulwarkTestSupport
import Testing

@Suite struct CertificateTests {
    let config = TestKeys.config(n: 4)
    let blockHash = Digest.sha256([9])

    func commitVote(_ replica: Int, view: View = 2, height: Height = 5, hash: Digest? = nil) -> Vote {
        let message = CommitCertificate.signedMessage(cluster: config.clusterID, view: view, height: height,
                                                      blockHash: hash ?? blockHash, replica: ReplicaID(replica))
        return Vote(replica: ReplicaID(replica), signature: TestKeys.key(replica).sign(message))
    }

    @Test func aQuorumOfDistinctValidatorsVerifies() throws {
        try CommitCertificate(height: 5, view: 2, blockHash: blockHash, votes: [0, 1, 2].map { commitVote($0) })
            .verify(config: config)
        try CommitCertificate(height: 5, view: 2, blockHash: blockHash, votes: [0, 1, 2, 3].map { commitVote($0) })
            .verify(config: config)
    }

    @Test func oneShortOfQuorumFails() {
        let cert = CommitCertificate(height: 5, view: 2, blockHash: blockHash, votes: [0, 3].map { commitVote($0) })
        #expect(throws: CertificateError.tooFewSigners(have: 2, need: 3)) { try cert.verify(config: config) }
    }

    @Test func aRepeatedSignerDoesNotCountTwice() {
        let cert = CommitCertificate(height: 5, view: 2, blockHash: blockHash,
                                     votes: [commitVote(0), commitVote(1), commitVote(1)])
        #expect(throws: CertificateError.duplicateSigner(1)) { try cert.verify(config: config) }
    }

    @Test func aNonValidatorSignatureFails() {
        var outsider = commitVote(0)
        outsider.replica = 9
        let cert = CommitCertificate(height: 5, view: 2, blockHash: blockHash,
                                     votes: [commitVote(0), commitVote(1), commitVote(2), outsider])
        #expect(throws: CertificateError.unknownSigner(9)) { try cert.verify(config: config) }
    }

    @Test func signaturesFromAnotherHeightOrViewOrBlockFail() {
        for stale in [commitVote(2, height: 4), commitVote(2, view: 1), commitVote(2, hash: .zero)] {
            let cert = CommitCertificate(height: 5, view: 2, blockHash: blockHash, votes: [commitVote(0), commitVote(1), stale])
            #expect(throws: CertificateError.invalidSignature(2)) { try cert.verify(config: config) }
        }
    }

    @Test func aSignatureClaimingAnotherSenderFails() {
        var forged = commitVote(3)
        forged.replica = 2
        let cert = CommitCertificate(height: 5, view: 2, blockHash: blockHash, votes: [commitVote(0), commitVote(1), forged])
        #expect(throws: CertificateError.invalidSignature(2)) { try cert.verify(config: config) }
    }

    @Test func executionCertificatesBindTheStateRoot() throws {
        let root = Digest.sha256([1])
        let votes = (0..<3).map { i in
            Vote(replica: ReplicaID(i), signature: TestKeys.key(i).sign(
                ExecutionCertificate.signedMessage(cluster: config.clusterID, height: 5, blockHash: blockHash,
                                                   stateRoot: root, replica: ReplicaID(i))))
        }
        try ExecutionCertificate(height: 5, blockHash: blockHash, stateRoot: root, votes: votes).verify(config: config)
        let lying = ExecutionCertificate(height: 5, blockHash: blockHash, stateRoot: .zero, votes: votes)
        #expect(throws: CertificateError.invalidSignature(0)) { try lying.verify(config: config) }
    }

    @Test func commitSignaturesAreNotCheckpointSignatures() {
        // Same numbers, different message kinds: a COMMIT signature is worthless as a CHECKPOINT.
        let votes = (0..<3).map { commitVote($0, height: 5) }
        let cert = ExecutionCertificate(height: 5, blockHash: blockHash, stateRoot: blockHash, votes: votes)
        #expect(throws: CertificateError.self) { try cert.verify(config: config) }
    }

    @Test func blockTxRootCoversItsRequests() {
        var arbitrary = Arbitrary(seed: 11)
        let requests = (0..<5).map { _ in arbitrary.request() }
        var header = arbitrary.header()
        header.clusterID = arbitrary.cluster
        header.txRoot = Block.txRoot(of: requests, cluster: arbitrary.cluster)
        var block = Block(header: header, requests: requests)
        #expect(block.hasConsistentTxRoot())
        block.requests.swapAt(0, 1)
        #expect(!block.hasConsistentTxRoot())
        block.requests.swapAt(0, 1)
        block.requests.removeLast()
        #expect(!block.hasConsistentTxRoot())
        #expect(Block.txRoot(of: [], cluster: arbitrary.cluster) == MerkleTree.emptyRoot)
    }
}
