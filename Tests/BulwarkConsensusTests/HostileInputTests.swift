import BulwarkConsensus
import BulwarkCore
import BulwarkShell
import Testing

/// Messages signed by a real validator (so they pass authentication) whose integer fields are
/// at the boundaries. Each case once trapped every receiver on arithmetic overflow; now each is
/// dropped and counted, and the replica goes on.
@Suite struct HostileInputTests {
    /// A checkpoint proof whose every part claims height `height`, with a made-up certificate.
    func bogusProof(_ h: Harness, height: Height) -> CheckpointProof {
        let header = BlockHeader(clusterID: h.cluster, height: height, view: 0, timestampMs: 0, proposer: 0,
                                 prevBlockHash: Digest.zero, txRoot: MerkleTree.emptyRoot, historyRoot: MerkleTree.emptyRoot)
        let certificate = ExecutionCertificate(height: height, blockHash: header.hash, stateRoot: Digest.zero, votes: [])
        return CheckpointProof(certificate: certificate, header: header, historyBefore: MerkleAccumulator())
    }

    /// Found in Bulwark: a signed VIEW-CHANGE whose checkpoint proof has height 0 underflowed
    /// `proof.height - 1` in `Checkpoints.isValid`; broadcast, it killed every honest replica.
    @Test func aViewChangeWithAHeightZeroCheckpointIsDropped() {
        var h = Harness()
        let vc = ViewChange.signed(newView: 1, checkpoint: bogusProof(h, height: 0), prepared: [], by: h.keys[1], replica: 1,
                                   cluster: h.cluster)
        for i in [0, 2, 3] { h.step(i, .message(.viewChange(vc))) }
        for i in [0, 2, 3] { #expect(h.replicas[i].rejections[.outOfRange] == 1, "replica \(i)") }
        // A NEW-VIEW carrying it is dropped the same way.
        let nv = NewView.signed(view: 1, viewChanges: [vc], proposals: [], by: h.keys[1], replica: 1, cluster: h.cluster)
        h.step(0, .message(.newView(nv)))
        #expect(h.replicas[0].rejections[.outOfRange] == 2)
        #expect(h.replicas[0].view == 0)
    }

    /// Proposals timestamped at either end of time are refused by the skew bound, whose
    /// arithmetic touches only the backup's own clock and the configured skew.
    @Test func aPrePrepareTimestampedAtTheEndOfTimeIsRefused() {
        var h = Harness()
        let pp = h.signedPrePrepare(view: 0, height: 1, requests: [h.request(1)], by: 0, timestampMs: .max)
        h.step(1, .message(.prePrepare(pp)))
        #expect(h.replicas[1].rejections[.badTimestamp] == 1)
        let early = h.signedPrePrepare(view: 0, height: 1, requests: [h.request(1)], by: 0, timestampMs: 0)
        h.step(2, .message(.prePrepare(early)))
        #expect(h.replicas[2].rejections[.badTimestamp] == 1)
        // An honest proposal still goes through afterwards.
        for i in 0..<4 { h.step(i, .clientRequest(h.request(1))) }
        h.run()
        #expect(h.executed.allSatisfy { $0.count == 1 })
    }

    /// Heights of 0 or beyond `ProtocolBounds.heightMax`, and views beyond the far-future
    /// window, in every message type that carries them.
    @Test func boundaryHeightsAndViewsAreDroppedBeforeUse() {
        var h = Harness()
        let key = h.keys[1]
        let c = h.cluster
        let digest = Digest.zero
        var hostile: [Message] = []
        for height: Height in [0, ProtocolBounds.heightMax + 1, .max - 1, .max] {
            hostile.append(.prepare(Prepare.signed(view: 0, height: height, blockHash: digest, by: key, replica: 1, cluster: c)))
            hostile.append(.commit(Commit.signed(view: 0, height: height, blockHash: digest, by: key, replica: 1, cluster: c)))
            hostile.append(.checkpoint(Checkpoint.signed(height: height, blockHash: digest, stateRoot: digest, by: key,
                                                         replica: 1, cluster: c)))
            hostile.append(.checkpointProof(bogusProof(h, height: height)))
            hostile.append(.viewChange(ViewChange.signed(newView: 1, checkpoint: bogusProof(h, height: height), prepared: [],
                                                         by: key, replica: 1, cluster: c)))
            let block = h.signedPrePrepare(view: 0, height: height, requests: [], by: 0)
            hostile.append(.prePrepare(block))
            hostile.append(.commitProof(CommitProof(header: block.block.header, certificate: CommitCertificate(
                height: height, view: 0, blockHash: block.blockHash, votes: []))))
        }
        for view: View in [ProtocolBounds.viewsAheadMax + 1, ProtocolBounds.viewMax + 1, .max] {
            hostile.append(.prepare(Prepare.signed(view: view, height: 1, blockHash: digest, by: key, replica: 1, cluster: c)))
            hostile.append(.commit(Commit.signed(view: view, height: 1, blockHash: digest, by: key, replica: 1, cluster: c)))
            hostile.append(.viewChange(ViewChange.signed(newView: view, checkpoint: nil, prepared: [], by: key, replica: 1,
                                                         cluster: c)))
            hostile.append(.newView(NewView.signed(view: view, viewChanges: [], proposals: [], by: key, replica: 1,
                                                   cluster: c)))
        }
        for message in hostile { h.step(0, .message(message)) }
        #expect(h.replicas[0].rejections[.outOfRange] == UInt64(hostile.count))
        #expect(h.replicas[0].view == 0 && !h.replicas[0].isChangingView)
        // The cluster still commits.
        h.network = []
        for i in 0..<4 { h.step(i, .clientRequest(h.request(1))) }
        h.run()
        #expect(h.executed.allSatisfy { $0.count == 1 })
    }

    /// Found in Bulwark: `fetchBlocks(from: 2^64−1, to: 2^64−1)` overflowed `from + 127` in the
    /// node's state-transfer server; sent to every honest replica it took the cluster down.
    @Test func aStateTransferRequestServesOnlyWhatTheLedgerHolds() {
        let max = Height.max
        #expect(PeerFrame.transferRange(from: max, to: max, ledgerHeight: 10) == nil)
        #expect(PeerFrame.transferRange(from: max - 1, to: max, ledgerHeight: max - 1) == (max - 1)...(max - 1))
        #expect(PeerFrame.transferRange(from: 0, to: 5, ledgerHeight: 10) == nil)
        #expect(PeerFrame.transferRange(from: 6, to: 5, ledgerHeight: 10) == nil)
        #expect(PeerFrame.transferRange(from: 11, to: 20, ledgerHeight: 10) == nil)
        #expect(PeerFrame.transferRange(from: 3, to: max, ledgerHeight: 10) == 3...10)
        #expect(PeerFrame.transferRange(from: 1, to: max, ledgerHeight: 1_000)?.count == PeerFrame.transferBlocksMax)
    }

    /// Found by fuzzing (tools/fuzz message): a prepared certificate's prepares were sorted
    /// when decoded, so the same VIEW-CHANGE had an encoding for every order of its prepares.
    /// Only strictly increasing replica order decodes now.
    @Test func aPreparedCertificateHasOneEncoding() throws {
        var h = Harness()
        let pp = h.prepareWithoutCommitting(1)
        let prepares = (1...2).map { h.prepare(pp, from: $0) }
        let certificate = PreparedCertificate(proposal: pp.proposal, prepares: prepares)
        let canonical = certificate.encoded()
        #expect(try PreparedCertificate(decoding: canonical) == certificate)
        // The same prepares written in the other order.
        var w = CanonicalWriter()
        w.write(pp)
        w.write(Array(prepares.reversed()))
        #expect(throws: CodecError.self) { try PreparedCertificate(decoding: w.bytes) }
        // And a replica's prepare twice.
        w = CanonicalWriter()
        w.write(pp)
        w.write([prepares[0], prepares[0]])
        #expect(throws: CodecError.self) { try PreparedCertificate(decoding: w.bytes) }
    }

    /// A request straight from a client that the replica will not order is answered with why,
    /// as a code: too large (with the limit), a bad signature, or rate-limited. A relayed copy
    /// is refused silently (its client is not on this connection).
    @Test func aRefusedClientRequestIsAnsweredWithItsReason() {
        // A pool of 4 × 8 requests: the per-client limit of 16 is what binds below.
        var h = Harness(batchRequestsMax: 4)
        let limit = h.config.parameters.requestBytesMax
        let big = Request.signed(by: h.client, cluster: h.cluster, requestID: 1,
                                 operation: .put(key: [1], value: [UInt8](repeating: 0, count: limit)))
        var forged = h.request(2)
        forged.operation = .put(key: [9], value: [9])
        func refusals(_ out: [Action]) -> [RequestRefusal] {
            out.compactMap { if case let .refuse(_, _, refusal) = $0 { return refusal } else { return nil } }
        }
        let tooLarge = refusals(h.step(1, .clientRequest(big)))
        #expect(tooLarge == [.tooLarge(bytes: UInt64(big.encoded().count), limit: UInt64(limit))])
        #expect(refusals(h.step(1, .clientRequest(forged))) == [.badSignature])
        #expect(refusals(h.step(1, .message(.request(forged)))).isEmpty, "a relayed request gets no answer")
        // One client may have 16 requests waiting; the 17th is refused as rate-limited.
        var refused: [RequestRefusal] = []
        for id in UInt64(10)..<UInt64(27) { refused += refusals(h.step(1, .clientRequest(h.request(id)))) }
        #expect(refused == [.rateLimited])
    }
}
