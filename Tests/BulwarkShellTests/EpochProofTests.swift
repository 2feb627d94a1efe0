import BulwarkConsensus
import BulwarkCore
import BulwarkShell
import BulwarkStorage
import Testing

/// A client learns the configuration in force from cluster.json alone, by proofs against
/// certified state (SPEC.md §18.5): each replica keeps, for every boundary it executed, the
/// governance proven right after it, and answers with it and the boundary's certificate.
@Suite struct EpochProofTests {
    static let admin = PrivateKey(seed: [0xad] + Array(repeating: 0, count: 31))!

    /// Runs a change (same validators, a longer batch delay) through a shell cluster until
    /// every replica is in epoch 1; returns the cluster and the new configuration.
    static func changedCluster() throws -> (ShellCluster, ClusterConfig) {
        let cluster = ShellCluster(admins: [admin.publicKey])
        var next = cluster.config
        next.parameters.batchDelayMs = 2
        cluster.request(.approveConfig(ConfigApprovalRequest(epoch: 0, config: next, adminKey: admin)), to: [0, 1, 2, 3])
        for _ in 0..<100 where (0..<4).contains(where: { cluster.shell($0).core.epoch == 0 }) {
            cluster.run(rounds: 20, stepMs: 10)
        }
        for i in 0..<4 { try #require(cluster.shell(i).core.epoch == 1, "replica \(i) did not reach epoch 1") }
        return (cluster, next)
    }

    /// Asks replica `i`, as a client, how the configuration changed after `from`.
    static func ask(_ cluster: ShellCluster, _ i: Int, from: UInt64) throws -> [EpochProof] {
        let before = cluster.clientFrames[i, default: []].count
        cluster.frames.append(.init(from: -1, to: .replica(i),
                                    bytes: ClientFrame.epochProofsRequest(from: from, nonce: 7).encoded()))
        cluster.run()
        let answers = cluster.clientFrames[i, default: []].dropFirst(before).compactMap { frame -> [EpochProof]? in
            guard case let .epochProofs(7, steps) = frame else { return nil }
            return steps
        }
        return try #require(answers.first, "replica \(i) did not answer")
    }

    @Test func aClientProvesTheNextEpochsConfigurationFromGenesisAlone() throws {
        let (cluster, next) = try Self.changedCluster()
        for i in 0..<4 {
            let steps = try Self.ask(cluster, i, from: 0)
            try #require(steps.count == 1)
            #expect(try steps[0].verify(from: cluster.config, epoch: 0) == next)
            // Nothing newer than epoch 1, and nothing for an epoch that does not exist.
            #expect(try Self.ask(cluster, i, from: 1).isEmpty)
            #expect(try Self.ask(cluster, i, from: .max).isEmpty)
        }
        // Kept on disk: a restarted replica (its map at the boundary long gone) still proves it.
        try cluster.start(2)
        let afterRestart = try Self.ask(cluster, 2, from: 0)
        #expect(afterRestart.count == 1)
        #expect(try afterRestart.first?.verify(from: cluster.config, epoch: 0) == next)
    }

    @Test func aForgedOrMisplacedStepIsRefused() throws {
        let (cluster, next) = try Self.changedCluster()
        let step = try #require(try Self.ask(cluster, 0, from: 0).first)
        // A replica substitutes a configuration of its own choosing: the map path no longer matches.
        var forged = step
        var stranger = next
        stranger.validators[0].publicKey = Self.admin.publicKey
        forged.governance.governance.config = stranger
        #expect(throws: EpochProof.Failure.proof(.valueMismatch)) { try forged.verify(from: cluster.config, epoch: 0) }
        // The same step offered as the end of another epoch.
        #expect(throws: EpochProof.Failure.notTheBoundary(epoch: 1)) { try step.verify(from: cluster.config, epoch: 1) }
        // A certificate checked against validators who did not sign it.
        var others = cluster.config
        for i in others.validators.indices { others.validators[i].publicKey = PrivateKey(seed: [UInt8(i + 40)] + Array(repeating: 1, count: 31))!.publicKey }
        #expect(throws: EpochProof.Failure.self) { try step.verify(from: others, epoch: 0) }
        // A certificate of another height than the proven state's.
        var moved = step
        moved.governance.height -= 4
        #expect(throws: EpochProof.Failure.heightMismatch(proof: moved.governance.height, certificate: step.certificate.height)) {
            try moved.verify(from: cluster.config, epoch: 0)
        }
        // What travels is what was checked.
        let frame = ClientFrame.epochProofs(nonce: 1, [step])
        #expect(try ClientFrame(decoding: frame.encoded()) == frame)
    }

    @Test func aDamagedProofFileIsCutNotFatal() throws {
        let disk = SimulatedFileSystem()
        try disk.createDirectory("/d")
        let (cluster, _) = try Self.changedCluster()
        let proof = try #require(try Self.ask(cluster, 1, from: 0).first).governance
        var next = proof
        // The next boundary's state, as the decoder accepts it (one end per epoch, in order).
        next.governance.epoch = 2
        next.governance.epochEnds.append(proof.governance.firstHeight + 7)
        next.governance.firstHeight = proof.governance.firstHeight + 8
        let log = try EpochProofLog(path: "/d/epochs.log", fileSystem: disk)
        try log.record(proof)
        try log.record(next)
        // A torn second record: the first survives, the file is cut after it and can grow again.
        let file = try disk.open("/d/epochs.log", create: false)
        let size = try file.size()
        try file.truncate(to: size - 3)
        file.close()
        let reopened = try EpochProofLog(path: "/d/epochs.log", fileSystem: disk)
        #expect(reopened.proofs == [1: proof])
        try reopened.record(next)
        #expect(try EpochProofLog(path: "/d/epochs.log", fileSystem: disk).proofs == [1: proof, 2: next])
    }
}
