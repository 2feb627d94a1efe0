import BulwarkConsensus
import BulwarkCore
import BulwarkShell
import Testing

/// Issue 29 item 5: a VIEW-CHANGE or NEW-VIEW that carried whole blocks grew with the values
/// written and passed `frameBytesMax`, so with one replica down and large values no view change
/// could complete. They carry headers now; bodies travel as PRE-PREPAREs, one block a frame.
@Suite struct ViewChangeSizeTests {
    /// The smallest frame a configuration allows, with blocks of half of it.
    static func maxSizeHarness() -> Harness {
        Harness(window: 4) { p in
            p.frameBytesMax = 64 * 1024
            p.batchBytesMax = 32 * 1024
            p.requestBytesMax = 32 * 1024
            p.valueBytesMax = 30 * 1024
        }
    }

    static func bigPut(_ h: Harness, _ id: UInt64) -> Request {
        h.request(id, .put(key: Array("k\(id)".utf8), value: Array(repeating: UInt8(truncatingIfNeeded: id), count: 30 * 1024)))
    }

    /// A full window of blocks at `batchBytesMax` is prepared everywhere and committed nowhere;
    /// the primary goes silent. Every message any replica then builds fits a frame, and the
    /// three others complete the view change and execute every block.
    @Test func aViewChangeOverAWindowOfMaxSizeBlocksFitsAFrame() throws {
        var h = Self.maxSizeHarness()
        var proposed: [PrePrepare] = []
        for id in 1...4 as ClosedRange<UInt64> {
            for i in h.replicas.indices { h.step(i, .clientRequest(Self.bigPut(h, id))) }
            h.step(0, .timerFired(.batch))
            h.run(deliver: { _, message in if case .commit = message { return false } else { return true } })
            proposed = h.actions[0].prePrepares
        }
        #expect(proposed.count == 4, "a window of four blocks in flight")
        #expect(proposed.allSatisfy { $0.block.encoded().count > 30 * 1024 })
        // Carried whole, as they were, the prepared blocks alone would not fit one frame.
        #expect(proposed.map { $0.block.encoded().count }.reduce(0, +) > h.config.parameters.frameBytesMax)
        for i in 1...3 { h.fireRequestTimer(i) }
        // Replica 0 is down from here on.
        h.run(deliver: { to, _ in to != 0 })
        let frameMax = h.config.parameters.frameBytesMax
        for i in 1...3 {
            for message in h.actions[i].broadcasts {
                #expect(message.encoded().count + MessageSizes.frameOverhead <= frameMax,
                        "replica \(i) built a \(message.kind) of \(message.encoded().count) bytes")
            }
        }
        let vc = try #require(h.actions[2].viewChanges.last)
        #expect(vc.prepared.count == 4)
        for i in 1...3 {
            #expect(h.replicas[i].view == 1 && !h.replicas[i].isChangingView, "replica \(i)")
            #expect(h.executed[i].map(\.hash) == proposed.map(\.blockHash), "replica \(i) executed the prepared blocks")
        }
    }

    /// A block prepared by all but `missing`, which never got its PRE-PREPARE, and committed
    /// nowhere; then backups 1–3 time out and change to view 1 (primary 1).
    static func viewChange(afterAPrePrepareMissing missing: Int) throws -> (Harness, PrePrepare) {
        var h = Harness()
        for i in h.replicas.indices { h.step(i, .clientRequest(h.request(1))) }
        h.run(deliver: { to, message in
            if case .commit = message { return false }
            if case .prePrepare = message { return to != missing }
            return true
        })
        let prepared = try #require(h.actions[0].prePrepares.last)
        for i in 1...3 { h.fireRequestTimer(i) }
        h.run()
        return (h, prepared)
    }

    /// A backup that never received a block's PRE-PREPARE (it was down) gets the body from the
    /// new primary's PRE-PREPARE after the NEW-VIEW, which names the block by header only.
    @Test func aReplicaThatNeverSawTheBlockGetsItsBodyFromTheNewPrimary() throws {
        let (h, prepared) = try Self.viewChange(afterAPrePrepareMissing: 3)
        let nv = try #require(h.actions[1].newViews.last)
        #expect(nv.proposals.map(\.blockHash) == [prepared.blockHash])
        #expect(h.actions[1].prePrepares.map(\.blockHash).contains(prepared.blockHash),
                "the new primary sends the body it holds")
        #expect(h.executed[3].map(\.hash) == [prepared.blockHash])
    }

    /// When the new primary itself never received the block, nobody sends the body after the
    /// NEW-VIEW: the others commit it by hash and execute it, and the primary asks for the
    /// committed block by state transfer instead of stalling.
    @Test func aNewPrimaryWithoutTheBodyCommitsByHashAndFetchesIt() throws {
        let (h, prepared) = try Self.viewChange(afterAPrePrepareMissing: 1)
        // (The new primary, not knowing the block's requests, may propose the request again
        // above it; execution answers that copy from the client's record.)
        for i in [0, 2, 3] { #expect(h.executed[i].first?.hash == prepared.blockHash, "replica \(i)") }
        #expect(h.executed[1].isEmpty)
        let asked = h.actions[1].contains { if case .requestStateTransfer(1, nil) = $0 { true } else { false } }
        #expect(asked, "the new primary fetches the block it committed without its body")
    }

    /// The sizes the configuration check computes are exactly those of the largest messages:
    /// a certificate at every height of the window, a checkpoint proof with every validator's
    /// vote and the longest history accumulator.
    @Test(arguments: [4, 7, 10])
    func theComputedBoundIsTheLargestEncoding(validators n: Int) throws {
        var parameters = ProtocolParameters()
        parameters.watermarkWindow = 8
        parameters.checkpointInterval = 4
        let keys = (0..<n).map { PrivateKey(seed: [UInt8($0 + 1)] + Array(repeating: 7, count: 31))! }
        let config = try ClusterConfig.layout(keys: keys.map(\.publicKey), host: "h", basePort: 100,
                                              clusterID: ClusterID(raw: Bytes32(Array(repeating: 5, count: 32))!),
                                              parameters: parameters)
        let window = Int(parameters.watermarkWindow)
        let header = BlockHeader(clusterID: config.clusterID, height: 1, view: 0, timestampMs: 0, proposer: 0,
                                 prevBlockHash: .zero, txRoot: .zero, historyRoot: .zero)
        #expect(header.encoded().count == MessageSizes.header)
        let proposal = Proposal.signed(view: 0, header: header, by: keys[0], replica: 0, cluster: config.clusterID)
        let prepares = (1..<config.quorum).map {
            Prepare.signed(view: 0, height: 1, blockHash: proposal.blockHash, by: keys[$0], replica: ReplicaID($0),
                           cluster: config.clusterID)
        }
        let certificate = PreparedCertificate(proposal: proposal, prepares: prepares)
        let votes = (0..<n).map { Vote(replica: ReplicaID($0), signature: .zero) }
        let accumulator = MerkleAccumulator(size: (1 << 62) - 1, peaks: Array(repeating: .zero, count: 62))!
        let proof = CheckpointProof(
            certificate: ExecutionCertificate(height: 1 << 62, blockHash: .zero, stateRoot: .zero, votes: votes),
            header: header, historyBefore: accumulator)
        let vc = ViewChange.signed(newView: 1, checkpoint: proof, prepared: Array(repeating: certificate, count: window),
                                   by: keys[1], replica: 1, cluster: config.clusterID)
        #expect(vc.encoded().count == MessageSizes.viewChangeBytesMax(validators: n, quorum: config.quorum, window: window))
        let nv = NewView.signed(view: 1, viewChanges: Array(repeating: vc, count: config.quorum),
                                proposals: Array(repeating: proposal, count: window), by: keys[1], replica: 1,
                                cluster: config.clusterID)
        let frame = PeerFrame.consensus(epoch: 0, .newView(nv)).encoded()
        #expect(frame.count <= MessageSizes.newViewBytesMax(validators: n, quorum: config.quorum, window: window))
        #expect(nv.encoded().count + MessageSizes.frameOverhead
                == MessageSizes.newViewBytesMax(validators: n, quorum: config.quorum, window: window))
    }

    /// A configuration whose NEW-VIEW could pass the frame limit is refused, naming the fix.
    @Test func aConfigurationWhoseNewViewCannotFitIsRefused() throws {
        let keys = (0..<100).map { PrivateKey(seed: [UInt8($0 + 1)] + Array(repeating: 8, count: 31))!.publicKey }
        let id = ClusterID(raw: Bytes32(Array(repeating: 6, count: 32))!)
        #expect(throws: ConfigError.self) { try ClusterConfig.layout(keys: keys, host: "h", basePort: 100, clusterID: id) }
        var small = ProtocolParameters()
        small.watermarkWindow = 8
        small.checkpointInterval = 4
        _ = try ClusterConfig.layout(keys: keys, host: "h", basePort: 100, clusterID: id, parameters: small)
        _ = try ClusterConfig.layout(keys: Array(keys.prefix(4)), host: "h", basePort: 100, clusterID: id)
    }
}
