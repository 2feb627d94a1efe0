import BulwarkCore
import BulwarkStateMachine
import BulwarkTestSupport
import Testing

/// Configuration changes as ledger operations (SPEC.md §18.3): approvals are counted per
/// admin, checked against the current epoch and cluster, and the one reaching the threshold
/// schedules the change at a checkpoint boundary a window later; executing that block starts
/// the next epoch.
@Suite struct GovernanceTests {
    let admins = (0..<3).map { TestKeys.key(40 + $0) }
    let client = TestKeys.key(90)
    var parameters: ProtocolParameters {
        var p = ProtocolParameters()
        p.checkpointInterval = 4
        p.watermarkWindow = 8
        return p
    }

    func genesis() -> ClusterConfig {
        try! ClusterConfig.layout(keys: (0..<4).map { TestKeys.key($0).publicKey }, host: "127.0.0.1", basePort: 7000,
                                  clusterID: testCluster, parameters: parameters,
                                  admins: admins.map(\.publicKey), adminThreshold: 2)
    }

    /// Genesis with a fifth replica and replica 2's key replaced.
    func grown(from config: ClusterConfig) -> ClusterConfig {
        var validators = config.validators
        validators[2].publicKey = TestKeys.key(12).publicKey
        validators.append(Validator(id: 4, publicKey: TestKeys.key(4).publicKey,
                                    replicaAddress: Address(host: "127.0.0.1", port: 7100),
                                    clientAddress: Address(host: "127.0.0.1", port: 7101),
                                    httpAddress: Address(host: "127.0.0.1", port: 7102)))
        return try! ClusterConfig(clusterID: config.clusterID, validators: validators, parameters: config.parameters,
                                  admins: config.admins, adminThreshold: config.adminThreshold)
    }

    struct Ledger {
        var state: KeyValueState
        var requestID: UInt64 = 0
        let client: PrivateKey

        /// Executes one block holding `operations`; the result of each.
        mutating func run(_ operations: [LedgerOperation]) -> [OperationResult] {
            let requests = operations.map { op -> Request in
                requestID += 1
                return Request.signed(by: client, cluster: state.cluster, requestID: requestID, operation: op)
            }
            let header = BlockHeader(clusterID: state.cluster, epoch: state.governance.epoch(at: state.height + 1),
                                     height: state.height + 1, view: 0, timestampMs: 0, proposer: 0,
                                     prevBlockHash: .zero, txRoot: .zero, historyRoot: .zero)
            return try! state.execute(Block(header: header, requests: requests)).map {
                guard case let .executed(result) = $0 else { preconditionFailure("not executed") }
                return result
            }
        }
    }

    @Test func theThresholdSchedulesTheChangeAndTheBoundaryStartsTheEpoch() throws {
        let genesis = genesis()
        let next = grown(from: genesis)
        var ledger = Ledger(state: KeyValueState(genesis: genesis), client: client)
        let first = ConfigApprovalRequest(epoch: 0, config: next, adminKey: admins[0])
        let id = first.proposalID
        #expect(ledger.run([.approveConfig(first)]) == [.configApproved(ConfigProgress(id: id, approvals: 1, threshold: 2))])
        // The same admin again, a stranger, a forged signature and another epoch change nothing.
        #expect(ledger.run([.approveConfig(first)]) == [.configApproved(ConfigProgress(id: id, approvals: 1, threshold: 2))])
        #expect(ledger.run([.approveConfig(ConfigApprovalRequest(epoch: 0, config: next, adminKey: TestKeys.key(77)))])
                == [.configRefused(.notAnAdmin)])
        var forged = ConfigApprovalRequest(epoch: 0, config: next, adminKey: admins[1])
        forged.signature = first.signature
        #expect(ledger.run([.approveConfig(forged)]) == [.configRefused(.badSignature)])
        #expect(ledger.run([.approveConfig(ConfigApprovalRequest(epoch: 1, config: next, adminKey: admins[1]))])
                == [.configRefused(.wrongEpoch(current: 0))])
        #expect(ledger.state.governance.proposals.map(\.id) == [id])
        // The second admin completes it at height 6: the epoch ends at the first multiple of
        // the checkpoint interval (4) at least a window (8) later: 16.
        let completing = ledger.run([.approveConfig(ConfigApprovalRequest(epoch: 0, config: next, adminKey: admins[1]))])
        #expect(ledger.state.height == 6)
        #expect(completing == [.configApproved(ConfigProgress(id: id, approvals: 2, threshold: 2, lastHeight: 16))])
        #expect(ledger.state.governance.scheduled?.lastHeight == 16 && ledger.state.governance.proposals.isEmpty)
        #expect(ledger.run([.approveConfig(ConfigApprovalRequest(epoch: 0, config: genesis, adminKey: admins[2]))])
                == [.configRefused(.changePending(lastHeight: 16))])
        while ledger.state.height < 15 { _ = ledger.run([.put(key: [1], value: [UInt8(ledger.state.height)])]) }
        #expect(ledger.state.governance.epoch == 0 && ledger.state.governance.epoch(at: 17) == 1)
        _ = ledger.run([])
        let governance = ledger.state.governance
        #expect(governance.epoch == 1 && governance.config == next && governance.firstHeight == 17)
        #expect(governance.epochEnds == [16] && governance.scheduled == nil)
        // The next change needs approvals for epoch 1.
        #expect(ledger.run([.approveConfig(ConfigApprovalRequest(epoch: 0, config: genesis, adminKey: admins[0]))])
                == [.configRefused(.wrongEpoch(current: 1))])
        // The governance read reports it; snapshots keep it; a proof shows it under the state root.
        #expect(ledger.run([.governance]) == [.governance(ledger.state.governance)])
        let restored = try KeyValueState(snapshot: ledger.state.snapshot(), cluster: testCluster, history: ledger.state.historyStore)
        #expect(restored.governance == ledger.state.governance)
        let root = ledger.state.stateRoot
        var proof = ledger.state.proveGovernance()
        try proof.verify(stateRoot: root, cluster: testCluster)
        proof.governance.epoch = 7
        #expect(throws: KeyProof.Failure.self) { try proof.verify(stateRoot: root, cluster: testCluster) }
    }

    /// Two proposals compete: the first to reach the threshold wins, and the other's
    /// approvals are dropped with it (they approved a successor of an epoch that is ending).
    @Test func competingProposalsFirstToTheThresholdWins() {
        let genesis = genesis()
        let a = grown(from: genesis)
        var bValidators = genesis.validators
        bValidators[0].clientAddress = Address(host: "127.0.0.1", port: 7200)
        let b = try! ClusterConfig(clusterID: genesis.clusterID, validators: bValidators, parameters: genesis.parameters,
                                   admins: genesis.admins, adminThreshold: 2)
        var ledger = Ledger(state: KeyValueState(genesis: genesis), client: client)
        _ = ledger.run([.approveConfig(ConfigApprovalRequest(epoch: 0, config: a, adminKey: admins[0])),
                        .approveConfig(ConfigApprovalRequest(epoch: 0, config: b, adminKey: admins[1]))])
        #expect(ledger.state.governance.proposals.count == 2)
        let results = ledger.run([.approveConfig(ConfigApprovalRequest(epoch: 0, config: b, adminKey: admins[2])),
                                  .approveConfig(ConfigApprovalRequest(epoch: 0, config: a, adminKey: admins[1]))])
        #expect(results[1] == .configRefused(.changePending(lastHeight: 12)))
        #expect(ledger.state.governance.scheduled?.config == b && ledger.state.governance.proposals.isEmpty)
    }

    /// An approval signed for one cluster is refused by another, whose configuration it
    /// cannot even name.
    @Test func anApprovalFromAnotherClusterIsRefused() {
        let genesis = genesis()
        let other = try! ClusterConfig(clusterID: ClusterID(raw: Bytes32(Array(repeating: 9, count: 32))!),
                                       validators: genesis.validators, parameters: genesis.parameters,
                                       admins: genesis.admins, adminThreshold: 2)
        var ledger = Ledger(state: KeyValueState(genesis: genesis), client: client)
        #expect(ledger.run([.approveConfig(ConfigApprovalRequest(epoch: 0, config: other, adminKey: admins[0]))])
                == [.configRefused(.otherCluster)])
    }

    /// The boundary is the first checkpoint height at least a watermark window after the
    /// completing block, and never overflows.
    @Test(arguments: [(Height(1), Height(12)), (4, 12), (5, 16), (8, 16), (9, 20)])
    func theBoundaryIsACheckpointAWindowLater(completed: Height, last: Height) {
        #expect(Governance.lastHeight(completedAt: completed, parameters: parameters) == last)
    }

    @Test func theBoundaryNeverOverflows() {
        #expect(Governance.lastHeight(completedAt: .max - 3, parameters: parameters) == nil)
    }
}
