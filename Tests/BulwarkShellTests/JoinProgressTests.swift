import BulwarkConsensus
import BulwarkCore
import BulwarkStateMachine
import BulwarkShell
import BulwarkStorage
import BulwarkTestSupport
import Logging
import Testing

/// The join's state machine (`JoinProgress`), which `bulwark node --join` and the simulator
/// both drive: which answer counts, when a peer's turn ends, and when the join ends.
@Suite struct JoinProgressTests {
    static let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
    static let admin = PrivateKey(seed: [0xad, 0x01] + Array(repeating: 0x44, count: 30))!
    static let joiner = PrivateKey(seed: [0x10, 0x1e] + Array(repeating: 0x44, count: 30))!

    /// A ledger whose epoch 1 adds `joiner` as validator 4 and whose epoch 2 removes it again;
    /// and the height at which epoch 1 is in force.
    static let ledger: (fixture: LedgerFixture, epochOneAt: Height) = {
        var f = LedgerFixture(clients: 2, checkpointInterval: 4, admins: [admin.publicKey], adminThreshold: 1)
        f.laterKeys = [joiner]
        let genesis = f.config
        var id: UInt64 = 0
        func approve(_ config: ClusterConfig, epoch: UInt64) -> Request {
            id += 1
            return Request.signed(by: admin, cluster: genesis.clusterID, requestID: id,
                                  operation: .approveConfig(ConfigApprovalRequest(epoch: epoch, config: config, adminKey: admin)))
        }
        let added = genesis.validators + [Validator(id: 4, publicKey: joiner.publicKey,
                                                    replicaAddress: Address(host: "127.0.0.1", port: 7012),
                                                    clientAddress: Address(host: "127.0.0.1", port: 7013),
                                                    httpAddress: Address(host: "127.0.0.1", port: 7014))]
        let grown = try! ClusterConfig(clusterID: genesis.clusterID, validators: added, parameters: genesis.parameters,
                                       admins: genesis.admins, adminThreshold: 1)
        f.addBlock(requests: [approve(grown, epoch: 0)])
        for _ in 0..<200 where f.state.governance.epoch == 0 { f.addBlock([.put(key: [1], value: [1])]) }
        let epochOneAt = f.tip.height
        f.addBlock(requests: [approve(genesis, epoch: 1)])
        for _ in 0..<200 where f.state.governance.epoch == 1 { f.addBlock([.put(key: [2], value: [2])]) }
        f.addBlock([.put(key: [3], value: [3])])
        precondition(f.state.governance.epoch == 2)
        return (f, epochOneAt)
    }()

    static func joining() throws -> JoiningLedger {
        try JoiningLedger(genesis: ledger.fixture.config, key: joiner.publicKey, dataDirectory: "/data",
                          fileSystem: SimulatedFileSystem(), logger: logger)
    }

    @Test func onlyThePeerAskedAnswersAndAFailedBlockEndsItsTurn() throws {
        let entries = Self.ledger.fixture.entries
        let ledger = try Self.joining()
        var progress = JoinProgress(key: Self.joiner.publicKey)
        let first = progress.ask(ledger)
        #expect(first.frame == ClientFrame.fetchBlocks(from: 1, to: Height(ClientFrame.blocksMax)).encoded())
        let other = ReplicaID((first.peer + 1) % 4)
        // Another replica's answer, and a timeout of no question, move nothing.
        #expect(try progress.received(Array(entries.prefix(2)), from: other, ledger: ledger) == nil)
        #expect(progress.timedOut(question: first.number + 7, ledger: ledger) == nil)
        #expect(ledger.height == 0)
        #expect(try progress.received(Array(entries.prefix(2)), from: first.peer, ledger: ledger) == .ask)
        #expect(ledger.height == 2)
        // Its timeout, after the answer, is void.
        #expect(progress.timedOut(question: first.number, ledger: ledger) == nil)
        // A forged block (another block's certificate): kept out, and the next peer is asked.
        let second = progress.ask(ledger)
        var forged = entries[2]
        forged.certificate = entries[3].certificate
        #expect(try progress.received([forged], from: second.peer, ledger: ledger) == .ask)
        #expect(progress.rejection != nil)
        #expect(ledger.height == 2)
        let third = progress.ask(ledger)
        #expect(third.peer != second.peer)
        #expect(progress.timedOut(question: third.number, ledger: ledger) == .ask)
        #expect(progress.ask(ledger).peer != third.peer)
    }

    @Test func theJoinEndsWhenAnEpochListsTheKeyAndNeverAfterItWasRemoved() throws {
        let (fixture, epochOneAt) = Self.ledger
        // Caught up to epoch 1, which lists the key: done, as validator 4.
        let listed = try Self.joining()
        var progress = JoinProgress(key: Self.joiner.publicKey)
        var question = progress.ask(listed)
        #expect(try progress.received(Array(fixture.entries.prefix(Int(epochOneAt))), from: question.peer, ledger: listed) == .ask)
        question = progress.ask(listed)
        #expect(try progress.received([], from: question.peer, ledger: listed) == .done(4))
        // Past epoch 2, which removed it again: it must not start.
        let removed = try Self.joining()
        progress = JoinProgress(key: Self.joiner.publicKey)
        question = progress.ask(removed)
        #expect(try progress.received(fixture.entries, from: question.peer, ledger: removed) == .ask)
        question = progress.ask(removed)
        #expect(try progress.received([], from: question.peer, ledger: removed) == .removed)
        // Never listed: it waits for an epoch that lists it.
        let stranger = try JoiningLedger(genesis: fixture.config, key: PrivateKey(seed: Array(repeating: 9, count: 32))!.publicKey,
                                         dataDirectory: "/data", fileSystem: SimulatedFileSystem(), logger: Self.logger)
        progress = JoinProgress(key: stranger.key)
        question = progress.ask(stranger)
        #expect(try progress.received([], from: question.peer, ledger: stranger) == .wait)
    }
}
