import ArgumentParser
import BulwarkCore
import BulwarkStateMachine
import BulwarkStorage
import BulwarkTestSupport
import Foundation

/// Prints the throughput of the state machine's authenticated map and of the block log.
@main
struct StorageBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bulwark-storage-bench",
        abstract: "Measure state updates, key proofs and block-log appends on this machine.",
        discussion: """
            State: for each size, fills a state with that many keys, then times single-key \
            updates, proof generation and proof verification on random keys. Log: appends \
            blocks of signed-size requests to a block log in a temporary directory with one \
            fsync per group of blocks (group commit). Build with -c release for real figures.
            """
    )

    @Option(help: "Key counts to measure, comma-separated.") var keys = "10000,100000,1000000"
    @Option(help: "Operations timed per measurement.") var operations = 20_000
    @Option(name: .customLong("policy-grants"),
            help: "With N > 0, the state is a closed cluster's and the client is bound to a role of N write grants, the one covering its keys last (every request is checked against them).")
    var policyGrants = 0
    @Option(help: "Blocks appended per log measurement.") var blocks = 2000
    @Option(help: "Requests per block.") var requestsPerBlock = 64
    @Option(help: "Blocks per fsync, comma-separated.") var groups = "1,8,64"
    @Option(help: "Directory for the log files (default: a temporary directory).") var directory: String?
    @Option(name: .customLong("write-ledger"),
            help: ArgumentHelp("Instead of measuring, write a fully signed ledger and its cluster.json here (for bulwark-verify).", valueName: "DIR"))
    var writeLedger: String?
    @Option(name: .customLong("ledger-requests"), help: "Requests in the written ledger.") var ledgerRequests = 100_000
    @Option(name: .customLong("open-log"),
            help: ArgumentHelp("Instead of measuring, time opening the block log in DIR: reading every record (as the auditor does), then as a replica does (sealed segments from their indexes, written on the first open if missing).", valueName: "DIR"))
    var openLog: String?

    func validate() throws {
        guard parse(keys) != nil, parse(groups) != nil else { throw ValidationError("--keys and --groups take positive numbers, e.g. 1,8,64") }
        guard operations > 0, blocks > 0, requestsPerBlock > 0 else { throw ValidationError("counts must be positive") }
    }

    func parse(_ list: String) -> [Int]? {
        let values = list.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !values.isEmpty, values.allSatisfy({ ($0 ?? 0) > 0 }) else { return nil }
        return values.map { $0! }
    }

    func run() throws {
        if let writeLedger { return try write(ledgerTo: writeLedger) }
        if let openLog { return try open(log: openLog) }
        for count in parse(keys)! { try benchmarkState(keys: count) }
        for group in parse(groups)! { try benchmarkLog(group: group) }
    }

    /// A ledger with real client signatures, commit certificates and execution certificates.
    func write(ledgerTo path: String) throws {
        let blocks = max(1, (ledgerRequests + requestsPerBlock - 1) / requestsPerBlock)
        var fixture = LedgerFixture(clients: 16, checkpointInterval: 16)
        let log = try BlockLog(directory: path + "/blocks")
        var written = 0
        for b in 0..<blocks {
            let ops: [LedgerOperation] = (0..<requestsPerBlock).map { r in
                r % 4 == 3
                    ? .add(key: Array("account-\((b + r) % 100)".utf8), delta: 1, min: 0, max: .max)
                    : .put(key: Array("key-\((b * requestsPerBlock + r) % 50_000)".utf8), value: Array(repeating: 0x61, count: 100))
            }
            let entry = fixture.addBlock(ops)
            try log.append(entry)
            for cert in fixture.executionCertificates.suffix(1) where cert.height == entry.block.height { try log.append(cert) }
            written += ops.count
            if b % 64 == 63 { try log.sync() }
            if b % 500 == 499 { FileHandle.standardError.write(Data("wrote \(b + 1) of \(blocks) blocks\n".utf8)) }
        }
        try log.sync()
        try fixture.config.jsonData().write(to: URL(fileURLWithPath: path + "/cluster.json"))
        print("wrote \(blocks) blocks, \(written) signed requests to \(path)/blocks and \(path)/cluster.json")
    }

    func open(log path: String) throws {
        guard FileManager.default.fileExists(atPath: path) else { throw ValidationError("no block log at \(path)") }
        var height: Height = 0
        let scan = try Self.seconds { height = try BlockLogReader(directory: path).height }
        print(String(format: "open   every record:        %7.3f s for %d blocks", scan, height))
        for attempt in ["first replica open:  ", "second replica open: "] {
            let opened = try Self.seconds { height = try BlockLog(directory: path).height }
            print(String(format: "open   %@ %7.3f s for %d blocks", attempt, opened, height))
        }
    }

    static func seconds(_ body: () throws -> Void) rethrows -> Double {
        let start = ContinuousClock.now
        try body()
        let elapsed = ContinuousClock.now - start
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }

    /// Requests are executed, not verified, here: a zero signature keeps signing out of the timing.
    func request(_ client: PublicKey, _ id: UInt64, _ operation: LedgerOperation) -> Request {
        Request(client: client, requestID: id, operation: operation, signature: .zero)
    }

    func block(_ height: Height, _ requests: [Request]) -> Block {
        Block(header: BlockHeader(clusterID: ClusterID(raw: .zero), height: height, view: 0, timestampMs: 0, proposer: 0,
                                  prevBlockHash: .zero, txRoot: .zero, historyRoot: .zero), requests: requests)
    }

    func key(_ i: Int) -> [UInt8] { Array("account-\(i)".utf8) }

    /// Key histories go to a file in a temporary directory, as on a replica. The map is
    /// settled after each 1,000-request block, as a replica settles it at each checkpoint,
    /// so the update figure includes the tree's hashing (and the proof figure does not).
    func benchmarkState(keys count: Int) throws {
        let path = NSTemporaryDirectory() + "bulwark-bench-history-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let history = try FileKeyHistory(path: path, valueBytesMax: ProtocolParameters().valueBytesMax)
        let validators = (0..<4).map { PrivateKey(seed: [UInt8($0 + 1)] + Array(repeating: 0xbe, count: 31))!.publicKey }
        let admin = PrivateKey(seed: Array(repeating: 0xad, count: 32))!
        let genesis = try ClusterConfig.layout(keys: validators, host: "127.0.0.1", basePort: 7000,
                                               clusterID: ClusterID(raw: Bytes32(Array(repeating: 0xbe, count: 32))!),
                                               admins: [admin.publicKey], policy: policyGrants > 0 ? .closed : .open)
        var state = KeyValueState(genesis: genesis, history: history)
        let client = PrivateKey(seed: Array(repeating: 1, count: 32))!.publicKey
        var requestID: UInt64 = 0
        var height: Height = 0
        if policyGrants > 0 {
            // Grants that do not cover the keys come first, so each request scans them all.
            let grants = (0..<policyGrants).map { i in
                PolicyEdit.grant(role: "owner", Grant(permission: .write, prefix: Array((i == policyGrants - 1 ? "account-" : "other-\(i)/").utf8)))
            }
            let edits = Array(grants.prefix(Policy.editsMax - 1)) + [.bind(Binding(name: "bench", client: client, roles: ["owner"]))]
            let approval = PolicyApprovalRequest(cluster: genesis.clusterID, epoch: 0, sequence: 0, edits: edits, adminKey: admin)
            height += 1
            _ = try state.execute(block(height, [Request(client: admin.publicKey, requestID: 1, operation: .approvePolicy(approval),
                                                         signature: .zero)]))
            guard state.policy.bindings.count == 1 else { throw ValidationError("the bench's policy did not apply") }
        }
        let fill = try Self.seconds {
            var i = 0
            while i < count {
                let batch = (i..<min(count, i + 1000)).map { j -> Request in
                    requestID += 1
                    return request(client, requestID, .put(key: key(j), value: Array(repeating: 0x61, count: 100)))
                }
                height += 1
                _ = try state.execute(block(height, batch))
                state.settle()
                try history.flush()
                i += 1000
            }
        }
        var rng = SystemRandomNumberGenerator()
        let targets = (0..<operations).map { _ in key(Int.random(in: 0..<count, using: &rng)) }
        let update = try Self.seconds {
            for chunk in stride(from: 0, to: targets.count, by: 1000) {
                let batch = targets[chunk..<min(targets.count, chunk + 1000)].map { k -> Request in
                    requestID += 1
                    return request(client, requestID, .put(key: k, value: Array(repeating: 0x62, count: 100)))
                }
                height += 1
                _ = try state.execute(block(height, batch))
                state.settle()
                try history.flush()
            }
        }
        var proofs: [KeyProof] = []
        let prove = Self.seconds { proofs = targets.map { state.prove($0) } }
        let root = state.stateRoot
        var failures = 0
        let verify = Self.seconds {
            for proof in proofs where (try? proof.verify(stateRoot: root, cluster: state.cluster)) == nil { failures += 1 }
        }
        let depth = proofs.map(\.proof.siblings.count).reduce(0, +) / max(1, proofs.count)
        let policy = policyGrants > 0 ? " | closed policy, \(min(policyGrants, Policy.editsMax - 1)) grants" : ""
        print(String(format: "state  %8d keys: fill %9.0f puts/s | update %9.0f puts/s | prove %9.0f/s | verify %9.0f/s | mean proof depth %d%@%@",
                     count, Double(count) / fill, Double(targets.count) / update, Double(proofs.count) / prove,
                     Double(proofs.count) / verify, depth, policy, failures == 0 ? "" : " | \(failures) FAILED"))
    }

    func benchmarkLog(group: Int) throws {
        let path = directory ?? NSTemporaryDirectory() + "bulwark-bench-\(UUID().uuidString)"
        defer { if directory == nil { try? FileManager.default.removeItem(atPath: path) } }
        let cluster = ClusterID(raw: .zero)
        let client = PrivateKey(seed: Array(repeating: 2, count: 32))!
        // One signed request, reused: the log stores bytes, and signing is not what is measured.
        let template = Request.signed(by: client, cluster: cluster, requestID: 1,
                                      operation: .put(key: Array("account-1".utf8), value: Array(repeating: 0x61, count: 100)))
        let requests = (0..<requestsPerBlock).map { i -> Request in
            var r = template
            r.requestID = UInt64(i + 1)
            return r
        }
        let txRoot = Block.txRoot(of: requests, cluster: cluster)
        let signers = (0..<3).map { PrivateKey(seed: [UInt8($0 + 10)] + Array(repeating: 0, count: 31))! }
        var tip = ChainTip.genesis
        var entries: [LedgerEntry] = []
        for height in 1...Height(blocks) {
            let header = BlockHeader(clusterID: cluster, height: height, view: 0, timestampMs: height, proposer: 0,
                                     prevBlockHash: tip.blockHash, txRoot: txRoot, historyRoot: tip.history.root)
            let hash = header.hash
            let votes = signers.enumerated().map { Vote(replica: ReplicaID($0.offset), signature: $0.element.sign(hash.bytes)) }
            entries.append(LedgerEntry(block: Block(header: header, requests: requests),
                                       certificate: CommitCertificate(height: height, view: 0, blockHash: hash, votes: votes)))
            tip = tip.appending(header, hash: hash)
        }
        let bytes = entries.reduce(0) { $0 + $1.encoded().count }
        let log = try BlockLog(directory: path)
        var syncs = 0
        let elapsed = try Self.seconds {
            for (i, entry) in entries.enumerated() {
                try log.append(entry)
                if (i + 1) % group == 0 {
                    try log.sync()
                    syncs += 1
                }
            }
            try log.sync()
        }
        print(String(format: "log    group commit every %3d blocks: %8.0f blocks/s | %8.0f requests/s | %7.1f MB/s | %d fsyncs, %.2f ms per fsync group",
                     group, Double(blocks) / elapsed, Double(blocks * requestsPerBlock) / elapsed,
                     Double(bytes) / elapsed / 1e6, syncs, elapsed * 1000 / Double(max(1, syncs))))
    }
}
