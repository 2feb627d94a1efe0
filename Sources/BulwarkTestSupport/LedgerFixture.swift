import BulwarkCore
import BulwarkStateMachine

/// A valid ledger built for tests: real keys, real signatures, real commit and execution
/// certificates, so that storage and verification are exercised on what replicas produce.
public struct LedgerFixture: Sendable {
    /// The genesis configuration (epoch 0).
    public let config: ClusterConfig
    public let keys: [PrivateKey]
    /// Keys of validators a configuration change adds or re-keys: blocks of an epoch are
    /// signed by that epoch's validators, found here or in `keys` by public key.
    public var laterKeys: [PrivateKey] = []
    public let clients: [PrivateKey]
    public private(set) var entries: [LedgerEntry] = []
    public private(set) var executionCertificates: [ExecutionCertificate] = []
    public private(set) var state: KeyValueState
    public private(set) var tip = ChainTip.genesis
    /// What each block's requests did, and the state root after each block, by height − 1.
    public private(set) var outcomes: [[KeyValueState.Outcome]] = []
    public private(set) var stateRoots: [Digest] = []

    /// The state root after the last block (settled on a copy, so the fixture stays a value).
    public var stateRoot: Digest {
        var copy = state
        return copy.stateRoot
    }

    /// A proof of `key` in the state after the last block.
    public func prove(_ key: [UInt8]) -> KeyProof {
        var copy = state
        return copy.prove(key)
    }

    /// The replicated configuration after the last block, with its path in the map.
    public func proveGovernance() -> GovernanceProof {
        var copy = state
        return copy.proveGovernance()
    }

    public init(n: Int = 4, clients clientCount: Int = 3, checkpointInterval: UInt64 = 4,
                parameters base: ProtocolParameters = ProtocolParameters(), admins: [PublicKey] = [],
                adminThreshold: Int? = nil, policy: ClientPolicy = .open) {
        keys = (0..<n).map { PrivateKey(seed: [UInt8($0 + 1), 0xb0] + Array(repeating: 0, count: 30))! }
        clients = (0..<clientCount).map { PrivateKey(seed: [UInt8($0 + 1), 0xc1] + Array(repeating: 0, count: 30))! }
        var parameters = base
        parameters.checkpointInterval = checkpointInterval
        parameters.watermarkWindow = max(parameters.watermarkWindow, 2 * checkpointInterval)
        config = try! ClusterConfig.layout(keys: keys.map(\.publicKey), host: "127.0.0.1", basePort: 7000,
                                           clusterID: ClusterID(raw: Bytes32(Array(repeating: 0x5c, count: 32))!),
                                           parameters: parameters, admins: admins, adminThreshold: adminThreshold,
                                           policy: policy)
        state = KeyValueState(genesis: config)
    }

    var requestIDs: [UInt64] = []

    /// Appends a block of `operations` (one request each, round-robin over the clients),
    /// commits it with a quorum of signatures, executes it, and every `checkpointInterval`
    /// heights forms an execution certificate.
    @discardableResult
    public mutating func addBlock(_ operations: [LedgerOperation], view: View = 0, signers: [Int]? = nil) -> LedgerEntry {
        if requestIDs.isEmpty { requestIDs = Array(repeating: 0, count: clients.count) }
        var requests: [Request] = []
        for (i, operation) in operations.enumerated() {
            let c = (entries.count + i) % clients.count
            requestIDs[c] += 1
            requests.append(Request.signed(by: clients[c], cluster: config.clusterID, requestID: requestIDs[c], operation: operation))
        }
        return addBlock(requests: requests, view: view, signers: signers)
    }

    /// Appends a block of exactly `requests` (which may repeat earlier ones), as `addBlock`.
    /// `signers` are positions in the epoch's validator list (the first quorum by default).
    @discardableResult
    public mutating func addBlock(requests: [Request], view: View = 0, signers: [Int]? = nil) -> LedgerEntry {
        let height = tip.height + 1
        // The epoch in force at this height (SPEC.md §18.4) proposes, signs and certifies it.
        let epoch = state.governance.epoch, current = state.governance.config
        let header = BlockHeader(clusterID: config.clusterID, epoch: epoch, height: height, view: view,
                                 timestampMs: 1_700_000_000_000 + height, proposer: current.primary(of: view),
                                 prevBlockHash: tip.blockHash, txRoot: Block.txRoot(of: requests, cluster: config.clusterID),
                                 historyRoot: tip.history.root)
        let block = Block(header: header, requests: requests)
        let hash = block.hash
        let voters = (signers ?? Array(0..<current.quorum)).map { current.validators[$0] }
        func key(_ validator: Validator) -> PrivateKey {
            (keys + laterKeys).first { $0.publicKey == validator.publicKey }!
        }
        let votes = voters.map { validator in
            Vote(replica: validator.id, signature: key(validator).sign(
                CommitCertificate.signedMessage(cluster: config.clusterID, view: view, height: height, blockHash: hash,
                                                replica: validator.id)))
        }
        let entry = LedgerEntry(block: block, certificate: CommitCertificate(height: height, view: view, blockHash: hash, votes: votes))
        entries.append(entry)
        tip = tip.appending(header, hash: hash)
        outcomes.append(try! state.execute(block))  // in-memory histories: never fails
        stateRoots.append(state.stateRoot)
        if height % current.parameters.checkpointInterval == 0 {
            let root = state.stateRoot
            let votes = current.validators.prefix(current.quorum).map { validator in
                Vote(replica: validator.id, signature: key(validator).sign(
                    ExecutionCertificate.signedMessage(cluster: config.clusterID, height: height, blockHash: hash,
                                                       stateRoot: root, replica: validator.id)))
            }
            executionCertificates.append(ExecutionCertificate(height: height, blockHash: hash, stateRoot: root, votes: votes))
        }
        return entry
    }

    /// `count` blocks of small puts and transfers.
    public static func ledger(blocks count: Int, requestsPerBlock: Int = 3, checkpointInterval: UInt64 = 4) -> LedgerFixture {
        var fixture = LedgerFixture(checkpointInterval: checkpointInterval)
        for b in 0..<count {
            let ops: [LedgerOperation] = (0..<requestsPerBlock).map { r in
                r % 2 == 0
                    ? .put(key: Array("key-\((b * 7 + r) % 23)".utf8), value: Array("value-\(b)-\(r)".utf8))
                    : .add(key: Array("account-\(r % 3)".utf8), delta: 5, min: 0, max: 1_000_000)
            }
            fixture.addBlock(ops)
        }
        return fixture
    }
}

extension ClusterConfig {
    /// A genesis configuration for state-machine tests: four validators with fixed keys, in
    /// cluster `cluster`, with `parameters`.
    public static func testGenesis(cluster: ClusterID, parameters: ProtocolParameters = ProtocolParameters()) -> ClusterConfig {
        let keys = (0..<4).map { PrivateKey(seed: [UInt8($0 + 1), 0x9e] + Array(repeating: 0, count: 30))!.publicKey }
        return try! ClusterConfig.layout(keys: keys, host: "127.0.0.1", basePort: 7000, clusterID: cluster, parameters: parameters)
    }
}
