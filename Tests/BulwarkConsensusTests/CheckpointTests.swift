import BulwarkConsensus
import BulwarkCore
import Testing

/// Checkpoints and watermarks (TOCS §4.3).
@Suite struct CheckpointTests {
    @Test func aQuorumOfMatchingCheckpointsMakesItStableAndCollectsGarbage() {
        var h = Harness(checkpointInterval: 2, window: 4)
        for id in 1...2 as ClosedRange<UInt64> {
            for i in 0..<4 { h.step(i, .clientRequest(h.request(id))) }
            h.run()
        }
        #expect(h.replicas.allSatisfy { $0.lastExecuted == 2 && $0.lowWatermark == 2 })
        let stable = h.actions[1].compactMap { if case let .checkpointStable(p) = $0 { return p } else { return nil } }
        #expect(stable.count == 1)
        #expect(throws: Never.self) { try stable[0].certificate.verify(config: h.config) }
        // The window moved: heights up to 2 + 4 are now acceptable, at most 4 above the checkpoint.
        #expect(h.replicas[1].highWatermark == 6)
    }

    @Test func checkpointsWithDifferentStateRootsDoNotCombine() {
        var h = Harness(checkpointInterval: 2, window: 4)
        for id in 1...2 as ClosedRange<UInt64> {
            for i in 0..<4 { h.step(i, .clientRequest(h.request(id))) }
            // Deliver everything except checkpoints.
            h.run(deliver: { _, m in if case .checkpoint = m { return false } else { return true } })
        }
        #expect(h.replicas[0].lowWatermark == 0)
        let blockHash = h.executed[0][1].hash
        // Two replicas lie about the state root: with replica 0's own vote that is no quorum.
        for liar in [2, 3] {
            let lie = Checkpoint.signed(height: 2, blockHash: blockHash, stateRoot: .zero, by: h.keys[liar],
                                        replica: ReplicaID(liar), cluster: h.cluster)
            h.step(0, .message(.checkpoint(lie)))
        }
        #expect(h.replicas[0].lowWatermark == 0)
    }

    @Test func aReplicaBehindAStableCheckpointAsksForStateTransfer() {
        var h = Harness(checkpointInterval: 2, window: 4)
        for id in 1...2 as ClosedRange<UInt64> {
            for i in 0..<4 { h.step(i, .clientRequest(h.request(id))) }
            h.run(deliver: { to, _ in to != 3 })  // replica 3 hears nothing
        }
        let proof = h.actions[0].compactMap { if case let .checkpointStable(p) = $0 { return p } else { return nil } }.first!
        let out = h.step(3, .message(.checkpointProof(proof)))
        #expect(out.contains { if case .requestStateTransfer(2, _) = $0 { return true } else { return false } })
        // A proof with a forged certificate is refused.
        var forged = proof
        forged.certificate.stateRoot = .zero
        var fresh = Harness(checkpointInterval: 2, window: 4)
        #expect(fresh.step(3, .message(.checkpointProof(forged))).isEmpty)
        #expect(fresh.replicas[3].rejections[.invalidCheckpoint] == 1)
    }
}
