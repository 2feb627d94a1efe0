import BulwarkClient
import BulwarkCore
import BulwarkStorage
import BulwarkTestSupport
import BulwarkVerify
import Foundation
import NIOConcurrencyHelpers
import NIOPosix
import Testing

let bulwarkBinary = ProductBinary("bulwark")
let byzantineBinary = ProductBinary("bulwark-byzantine")

/// A 4-replica cluster of real `bulwark node` processes on 127.0.0.1, in a temporary
/// directory, with ports nobody else holds. Everything it starts it stops.
final class LocalCluster: @unchecked Sendable {
    let directory: String
    let config: ClusterConfig
    var processes: [Int: Process] = [:]

    init(admins: Int = 1, adminThreshold: Int = 1, viewChangeTimeoutMs: UInt64 = 1000, policy: ClientPolicy = .open,
         frameBytesMax: Int? = nil) throws {
        directory = NSTemporaryDirectory() + "bulwark-cluster-\(UUID().uuidString)"
        var parameters = ProtocolParameters()
        parameters.viewChangeTimeoutMs = viewChangeTimeoutMs
        parameters.checkpointInterval = 8
        parameters.watermarkWindow = 32
        if let frameBytesMax {
            parameters.frameBytesMax = frameBytesMax
            parameters.batchBytesMax = frameBytesMax / 2
        }
        var created: ClusterConfig?
        for _ in 0..<20 where created == nil {
            // Below Linux's ephemeral range (32768 up), so no outgoing connection takes one meanwhile.
            let base = Int.random(in: 10_000...32_000)
            guard Self.reserve(base..<(base + 12)) else { continue }
            created = try ClusterInit.run(nodes: 4, host: "127.0.0.1", basePort: base, directory: directory, force: true,
                                          parameters: parameters, admins: admins, adminThreshold: adminThreshold,
                                          policy: policy)
        }
        guard let created else { throw NodeTestError("no free ports found") }
        config = created
        try KeyFile.write(PrivateKey.generate(), to: directory + "/client.key")
    }

    /// The first of three consecutive free ports, picked at random below Linux's ephemeral
    /// range (so that neither an outgoing connection nor a test running alongside, which picks
    /// at random too, is likely to take them).
    static func freePorts() -> Int {
        for _ in 0..<100 {
            let base = Int.random(in: 10_000...32_000)
            if reserve(base..<(base + 3)) { return base }
        }
        return 32_100
    }

    /// Ports a cluster of this test process took, free or not at the moment: a replica that
    /// starts late leaves its ports unbound for a while, and another cluster must not take
    /// them meanwhile (a packet capture of one cluster's ports would see the other's traffic).
    static let reserved = NIOLockedValueBox<Set<Int>>([])

    /// Takes `ports` for this process if they are free and no cluster of it took them.
    static func reserve(_ ports: Range<Int>) -> Bool {
        reserved.withLockedValue { taken in
            guard ports.allSatisfy({ !taken.contains($0) }), portsAreFree(ports) else { return false }
            taken.formUnion(ports)
            return true
        }
    }

    static func portsAreFree(_ ports: Range<Int>) -> Bool {
        for port in ports {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(fd) }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            if bound != 0 { return false }
        }
        return true
    }

    func dataDirectory(_ i: Int) -> String { directory + "/data-\(i)" }

    /// Starts replica `i`: honest, or `bulwark-byzantine` with `behaviours`.
    /// `prefix` runs it behind another command (a network namespace).
    /// `options` go to `bulwark node` after the usual ones. A replica's first start is a new
    /// cluster's (`--genesis`: tests start replicas one by one), unless `probe` leaves it to ask
    /// its peers as `bulwark node` does by default, or it joins or rejoins.
    func start(_ i: Int, behaviours: [String] = [], prefix: [String] = [], options: [String] = [], key: String? = nil,
               probe: Bool = false) throws {
        var options = options
        if !probe, !options.contains("--rejoin"), !options.contains("--join"),
           !FileManager.default.fileExists(atPath: dataDirectory(i)) {
            options.append("--genesis")
        }
        let process = Process()
        let binary = behaviours.isEmpty ? bulwarkBinary : byzantineBinary
        (process.executableURL, process.arguments) = binary.command(
            (behaviours.isEmpty ? ["node"] : behaviours.flatMap { ["--behaviour", $0] })
                + ["--config", directory + "/cluster.json", "--key", key ?? directory + "/replica-\(i).key",
                   "--data", dataDirectory(i), "--log-level", "info"] + options,
            prefix: prefix)
        let path = directory + "/node-\(i).log"
        if !FileManager.default.fileExists(atPath: path) { _ = FileManager.default.createFile(atPath: path, contents: nil) }
        let log = FileHandle(forWritingAtPath: path)!
        log.seekToEndOfFile()
        process.standardOutput = log
        process.standardError = log
        try process.run()
        processes[i] = process
    }

    func kill9(_ i: Int) {
        guard let process = processes[i] else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        processes[i] = nil
    }

    /// SIGTERM to replica `i`, then wait (bounded) for it to exit.
    func stop(_ i: Int) {
        guard let process = processes[i] else { return }
        process.terminate()
        for _ in 0..<500 where process.isRunning { usleep(10_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        processes[i] = nil
    }

    /// SIGTERM to every process, then wait (bounded) for each to exit.
    func stopAll() {
        for (_, process) in processes { process.terminate() }
        for (_, process) in processes {
            for _ in 0..<500 where process.isRunning { usleep(10_000) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
        processes = [:]
    }

    func height(_ i: Int) -> Height { (try? BlockLogReader(directory: dataDirectory(i) + "/blocks"))?.height ?? 0 }

    deinit {
        stopAll()
        // BULWARK_KEEP_CLUSTERS=1 keeps the directories (logs, ledgers) for a look afterwards.
        if ProcessInfo.processInfo.environment["BULWARK_KEEP_CLUSTERS"] == nil {
            try? FileManager.default.removeItem(atPath: directory)
        }
    }
}

extension LocalCluster {
    /// The stopped replicas' ledgers agree at every common height and each passes the auditor;
    /// returns the readers and the common height.
    @discardableResult
    func expectLedgersAgreeAndAudit(replicas: [Int]) throws -> ([BlockLogReader], Height) {
        let readers = try replicas.map { try BlockLogReader(directory: dataDirectory($0) + "/blocks") }
        let common = readers.map(\.height).min()!
        for height in stride(from: Height(1), through: common, by: 1) {
            #expect(Set(readers.map { $0.blockHash(at: height)! }).count == 1, "height \(height)")
        }
        // cluster.json as it is now (a test may have rewritten it before starting the replicas):
        // the genesis state holds the whole configuration, addresses included.
        let genesis = try ClusterConfig.load(from: directory + "/cluster.json")
        for i in replicas {
            let report = LedgerAudit(config: genesis, threads: 2).audit(directory: dataDirectory(i) + "/blocks")
            #expect(report.passed, "replica \(i): \(String(describing: report.problem))")
        }
        return (readers, common)
    }
}

struct NodeTestError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

@Suite(.serialized, .enabled(if: bulwarkBinary.isBuilt, "skipped: the bulwark executable was not built"))
struct ClusterTests {
    func client(_ cluster: LocalCluster) throws -> LedgerClient {
        LedgerClient(config: cluster.config, key: try KeyFile.load(from: cluster.directory + "/client.key"))
    }

    /// Starts all four replicas and waits (bounded) until a write goes through.
    func servingCluster(frameBytesMax: Int? = nil) async throws -> (LocalCluster, LedgerClient) {
        let cluster = try LocalCluster(frameBytesMax: frameBytesMax)
        for i in 0..<4 { try cluster.start(i) }
        let client = try client(cluster)
        var ready = false
        for _ in 0..<20 where !ready {
            ready = (try? await client.execute(.put(key: Array("hello".utf8), value: [1]), timeout: .seconds(2))) != nil
        }
        #expect(ready, "cluster never served")
        return (cluster, client)
    }


    /// Writes and linearizable reads; kill -9 of the primary under load; every acknowledged
    /// write readable afterwards and commits continuing; the killed replica restarted catches
    /// up; all ledgers agree and pass the auditor.
    @Test func survivesAPrimaryCrashAndTheRestartedReplicaCatchesUp() async throws {
        let (cluster, client) = try await servingCluster()
        defer { Task { await client.shutdown() } }
        var acknowledged: [String: String] = [:]
        for i in 0..<10 {
            let (result, _) = try await client.execute(.put(key: Array("k\(i)".utf8), value: Array("v\(i)".utf8)))
            #expect(!result.isFailure)
            acknowledged["k\(i)"] = "v\(i)"
        }
        let (read, _) = try await client.execute(.get(key: Array("k3".utf8)))
        #expect(read == .value(Array("v3".utf8), version: read.versionValue))

        // Kill the primary of view 0 in the middle of a stream of writes.
        let writer = Task { () -> [String: String] in
            var done: [String: String] = [:]
            for i in 10..<30 {
                if let (result, _) = try? await client.execute(.put(key: Array("k\(i)".utf8), value: Array("v\(i)".utf8)),
                                                               timeout: .seconds(20)), !result.isFailure {
                    done["k\(i)"] = "v\(i)"
                }
            }
            return done
        }
        // Once the stream is flowing (its first blocks committed).
        let before = cluster.height(1)
        for _ in 0..<1000 where cluster.height(1) < before + 2 { try await Task.sleep(for: .milliseconds(10)) }
        cluster.kill9(0)
        acknowledged.merge(await writer.value) { $1 }
        #expect(acknowledged.count >= 25, "writes stopped after the primary crashed")
        for (key, value) in acknowledged {
            let (result, _) = try await client.execute(.get(key: Array(key.utf8)))
            #expect(result == .value(Array(value.utf8), version: result.versionValue), "\(key)")
        }

        // Restart the killed replica: it catches up from its peers.
        try cluster.start(0)
        for i in 30..<40 { _ = try await client.execute(.put(key: Array("k\(i)".utf8), value: [1])) }
        var caughtUp = false
        for _ in 0..<200 where !caughtUp {
            caughtUp = cluster.height(0) > 0 && cluster.height(0) >= cluster.height(1)
            if !caughtUp { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(caughtUp, "replica 0 stayed at \(cluster.height(0)) while replica 1 reached \(cluster.height(1))")

        // `bulwark status` sees every replica, none faulted, and (bounded wait) the restarted one
        // joins the view the others moved to, from the NEW-VIEW its primary re-announces.
        var rows: [[String: Any]] = []
        for _ in 0..<50 {
            let status = try bulwarkBinary.run(["status", "--config", cluster.directory + "/cluster.json", "--json"],
                                               timeout: .seconds(30))
            rows = (try? JSONSerialization.jsonObject(with: Data(status.stdout.utf8))) as? [[String: Any]] ?? []
            if rows.count == 4, rows.allSatisfy({ ($0["view"] as? Int ?? 0) >= 1 }) { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(rows.count == 4 && rows.allSatisfy { $0["reachable"] as? Bool == true && $0["faulted"] is NSNull })
        #expect(rows.allSatisfy { ($0["view"] as? Int ?? 0) >= 1 }, "\(rows)")

        cluster.stopAll()
        let (readers, common) = try cluster.expectLedgersAgreeAndAudit(replicas: Array(0..<4))
        #expect(common > 30)
        // The blocks after the crash were committed in a later view: the view change happened.
        #expect(try readers[1].entry(at: common).certificate.view >= 1)
    }

    /// Issue 29 item 5 on real processes: with 60,000-byte values written by many clients (so
    /// blocks at `batchBytesMax`, here half of a 1 MiB frame) the primary is killed, leaving
    /// three replicas. A VIEW-CHANGE that carried its prepared blocks whole, and a NEW-VIEW of
    /// three of them, passed the frame, every receiver closed the link, and the view change
    /// never completed. The writes go on in a later view; every acknowledged one reads back;
    /// the ledgers agree.
    @Test func aViewChangeWithMaxSizeValuesAndOneReplicaDownCompletes() async throws {
        let (cluster, client) = try await servingCluster(frameBytesMax: 1 << 20)
        defer { Task { await client.shutdown() } }
        let value = [UInt8](repeating: 0x5a, count: 60_000)
        let killedAt = NIOLockedValueBox<ContinuousClock.Instant?>(nil)
        let firstAfterKill = NIOLockedValueBox<Duration?>(nil)
        // Each writer puts its own keys until it has done 12 or 90 s passed.
        let deadline = ContinuousClock.now + .seconds(90)
        let acknowledged = try await withThrowingTaskGroup(of: [String].self) { group in
            for w in 0..<24 {
                group.addTask {
                    var done: [String] = []
                    for i in 0..<12 where ContinuousClock.now < deadline {
                        let key = "big-\(w)-\(i)"
                        let issued = ContinuousClock.now
                        guard let (result, _) = try? await client.execute(.put(key: Array(key.utf8), value: value),
                                                                          timeout: .seconds(30)),
                              !result.isFailure else { continue }
                        done.append(key)
                        if let killed = killedAt.withLockedValue({ $0 }), issued > killed {
                            firstAfterKill.withLockedValue { $0 = $0 ?? (ContinuousClock.now - killed) }
                        }
                    }
                    return done
                }
            }
            // Kill the primary once a few large blocks are in.
            for _ in 0..<200 where cluster.height(1) < 4 { try await Task.sleep(for: .milliseconds(50)) }
            cluster.kill9(0)
            killedAt.withLockedValue { $0 = .now }
            print("primary killed at \(Date()) at height \(cluster.height(1))")
            var all: [String] = []
            for try await keys in group { all += keys }
            return all
        }
        let recovery = firstAfterKill.withLockedValue { $0 }
        print("view change with 60,000-byte values and the primary down: first write issued after the kill acknowledged in \(recovery.map { "\($0)" } ?? "never")")
        #expect(recovery != nil, "no write issued after the primary was killed completed")
        #expect(acknowledged.count >= 24 * 12 / 2, "only \(acknowledged.count) of \(24 * 12) large writes acknowledged")
        for key in acknowledged.prefix(40) {
            let (result, _) = try await client.execute(.get(key: Array(key.utf8)), timeout: .seconds(30))
            #expect(result == .value(value, version: result.versionValue), "\(key)")
        }
        cluster.stopAll()
        let (readers, common) = try cluster.expectLedgersAgreeAndAudit(replicas: [1, 2, 3])
        #expect(try readers[0].entry(at: common).certificate.view >= 1, "the writes after the crash went on in a later view")
    }

    /// History and verified reads through the client; /metrics; a replica whose block log was
    /// damaged in the middle repairs itself from its peers and ends with the same ledger.
    @Test func verifiedReadsMetricsAndADamagedLogRepairedFromPeers() async throws {
        let (cluster, client) = try await servingCluster()
        defer { Task { await client.shutdown() } }

        // History: every version with the height that wrote it, a deletion without a value.
        let key = Array("h".utf8)
        var heights: [Height] = []
        for op in [LedgerOperation.put(key: key, value: [1]), .put(key: key, value: [2]), .delete(key: key), .put(key: key, value: [3])] {
            heights.append(try await client.execute(op).1)
        }
        let (history, _) = try await client.execute(.history(key: key, limit: 10))
        #expect(history == .history(zip(heights, [[1], [2], nil, [3]]).map { .init(height: $0, value: $1) }))
        let (newest, _) = try await client.execute(.history(key: key, limit: 2))
        #expect(newest == .history([.init(height: heights[2], value: nil), .init(height: heights[3], value: [3])]))

        // Enough blocks for certified checkpoints (interval 8), then verified reads.
        for i in 0..<30 { _ = try await client.execute(.put(key: Array("k\(i)".utf8), value: Array("v\(i)".utf8))) }
        let bundle = try await client.prove(Array("k3".utf8))
        let proven = try bundle.verify(config: cluster.config)
        #expect(proven.value == Array("v3".utf8) && proven.height >= 8 && proven.height % 8 == 0)
        let absent = try await client.prove(Array("never-written".utf8))
        #expect(absent.proof.value == nil)
        var lie = bundle
        lie.proof.value = Array("forged".utf8)
        #expect(throws: KeyProofBundle.Failure.self) { try lie.verify(config: cluster.config) }
        lie = bundle
        lie.certificate.votes.removeLast(lie.certificate.votes.count - 2)
        #expect(throws: KeyProofBundle.Failure.self) { try lie.verify(config: cluster.config) }

        // /metrics: Prometheus text with the replica's committed height and executed requests.
        let metrics = String(decoding: ReplicaHTTP.get(cluster.config.validators[1].httpAddress, path: "/metrics") ?? Data(),
                             as: UTF8.self)
        let committed = metrics.split(separator: "\n").first { $0.hasPrefix("bulwark_committed_height{replica=\"1\"}") }
        #expect(committed.flatMap { Double($0.split(separator: " ").last!) } ?? 0 >= 30, "\(metrics.prefix(2000))")
        #expect(metrics.contains("# TYPE bulwark_request_latency_seconds histogram"))
        #expect(metrics.contains("bulwark_requests_executed_total{replica=\"1\"}"))
        // Per peer: the height it voted for, its lag, its connection.
        func value(_ series: String) -> Double? {
            metrics.split(separator: "\n").first { $0.hasPrefix(series + " ") }.flatMap { Double($0.split(separator: " ").last!) }
        }
        // Every request it executed had its client signature checked in this process.
        let executed = value("bulwark_requests_executed_total{replica=\"1\"}") ?? 0
        #expect(executed > 0 && value("bulwark_signatures_verified{replica=\"1\"}") ?? 0 >= executed)
        for peer in [0, 2, 3] {
            #expect(value("bulwark_peer_height{replica=\"1\",peer=\"\(peer)\"}") ?? 0 >= 24, "peer \(peer)")
            #expect(value("bulwark_peer_connected{replica=\"1\",peer=\"\(peer)\"}") == 1, "peer \(peer)")
            #expect(value("bulwark_peer_lag_blocks{replica=\"1\",peer=\"\(peer)\"}") != nil, "peer \(peer)")
        }

        // Damage replica 3's log in the middle of its segment, restart it, and keep writing.
        // Once replica 3 holds every block the others do.
        for _ in 0..<1000 where cluster.height(3) < cluster.height(1) { try await Task.sleep(for: .milliseconds(10)) }
        cluster.kill9(3)
        let damagedHeight = cluster.height(3)
        let blocks = cluster.dataDirectory(3) + "/blocks"
        let segment = try FileManager.default.contentsOfDirectory(atPath: blocks).filter { $0.hasPrefix("segment-") }.sorted().last!
        let handle = try #require(FileHandle(forUpdatingAtPath: blocks + "/" + segment))
        let size = handle.seekToEndOfFile()
        handle.seek(toFileOffset: size / 2)
        let byte = handle.readData(ofLength: 1)[0]
        handle.seek(toFileOffset: size / 2)
        handle.write(Data([byte ^ 0xFF]))
        try handle.close()
        #expect(try BlockLogReader(directory: blocks).damage != nil)
        try cluster.start(3)
        for i in 30..<40 { _ = try await client.execute(.put(key: Array("k\(i)".utf8), value: [1])) }
        var repaired = false
        for _ in 0..<200 where !repaired {
            repaired = cluster.height(3) > damagedHeight && cluster.height(3) >= cluster.height(1)
            if !repaired { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(repaired, "replica 3 stayed at \(cluster.height(3)); replica 1 is at \(cluster.height(1))")
        let log = try String(contentsOfFile: cluster.directory + "/node-3.log", encoding: .utf8)
        #expect(log.contains("block log damaged"))

        cluster.stopAll()
        let (readers, common) = try cluster.expectLedgersAgreeAndAudit(replicas: Array(0..<4))
        #expect(readers[3].damage == nil)
        #expect(common > damagedHeight)
    }

    /// A replica restarted with state snapshots resumes from the newest one and replays only
    /// the blocks after it; the next snapshot it writes is byte for byte the one a replica that
    /// never stopped writes at that height. A damaged snapshot is passed over for an older one
    /// (or the whole ledger), and the replica still ends with the same ledger.
    @Test func aRestartResumesFromTheNewestSnapshot() async throws {
        let cluster = try LocalCluster()
        let snapshotOptions = ["--snapshot-interval", "16"]
        for i in 0..<4 { try cluster.start(i, options: snapshotOptions) }
        let client = try client(cluster)
        defer { Task { await client.shutdown() } }
        func snapshots(_ i: Int) -> [String] {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: cluster.dataDirectory(i) + "/snapshots")) ?? []
            return names.filter { $0.hasSuffix(".snap") }.sorted()
        }
        func height(ofSnapshot name: String) -> Height { Height(name.dropFirst("state-".count).dropLast(".snap".count)) ?? 0 }
        /// Writes (bounded) until `done` holds.
        func write(until done: () -> Bool, label: String) async throws {
            var count = 0
            while !done() && count < 300 {
                _ = try await client.execute(.put(key: Array("s\(count % 7)".utf8), value: Array("\(label)\(count)".utf8)),
                                             timeout: .seconds(20))
                count += 1
                if count % 10 == 0 { try await Task.sleep(for: .milliseconds(50)) }
            }
            #expect(done(), "\(label): condition not reached after \(count) writes")
        }
        /// The "recovered" log lines of replica `i`, one per start.
        func recoveredLines(_ i: Int) -> [Substring] {
            let log = (try? String(contentsOfFile: cluster.directory + "/node-\(i).log", encoding: .utf8)) ?? ""
            return log.split(separator: "\n").filter { $0.contains("] recovered") }
        }
        /// Restarts replica 3 and returns its new "recovered" line once it is logged (bounded).
        func restart3() async throws -> Substring {
            let before = recoveredLines(3).count
            try cluster.start(3, options: snapshotOptions)
            for _ in 0..<200 where recoveredLines(3).count == before { try await Task.sleep(for: .milliseconds(50)) }
            return try #require(recoveredLines(3).dropFirst(before).first, "replica 3 did not recover")
        }

        try await write(until: { !snapshots(3).isEmpty }, label: "a")
        let first = height(ofSnapshot: snapshots(3).last!)
        #expect(first >= 16 && first % 16 == 0)
        cluster.stop(3)
        let recovered = try await restart3()
        let resumedFrom = recovered.split(separator: " ").first { $0.hasPrefix("snapshot=") }.flatMap { Height($0.dropFirst(9)) }
        #expect((resumedFrom ?? 0) >= first, "\(recovered)")
        // Versions written before the snapshot are read back from the key history file: a history
        // read executes alike on the restarted replica (had its result differed, its state root
        // would disagree with the quorum's and it would stop, which the checks below catch).
        let (result, _) = try await client.execute(.history(key: Array("s0".utf8), limit: 1000), timeout: .seconds(20))
        guard case let .history(versions) = result else { throw NodeTestError("history answered \(result)") }
        #expect(versions.count >= Int(first) / 7 / 2 && versions.first?.value == Array("a0".utf8),
                "s0 history: \(versions.count) versions from \(versions.first.map { "\($0)" } ?? "none")")

        // The next snapshot replica 3 writes equals replica 1's at that height.
        let target = (resumedFrom ?? first) + 16
        try await write(until: {
            snapshots(3).contains { height(ofSnapshot: $0) >= target } && snapshots(1).contains { height(ofSnapshot: $0) >= target }
        }, label: "b")
        let shared = Set(snapshots(3)).intersection(snapshots(1)).filter { height(ofSnapshot: $0) >= target }.sorted().last
        let name = try #require(shared, "no snapshot height in common: \(snapshots(3)) vs \(snapshots(1))")
        let mine = FileManager.default.contents(atPath: cluster.dataDirectory(3) + "/snapshots/" + name)
        let theirs = FileManager.default.contents(atPath: cluster.dataDirectory(1) + "/snapshots/" + name)
        #expect(mine != nil && mine == theirs, "\(name) differs between replicas 3 and 1")

        // Damage replica 3's newest snapshot: it is passed over, and the replica still agrees.
        cluster.stop(3)
        let newest = snapshots(3).last!
        let path = cluster.dataDirectory(3) + "/snapshots/" + newest
        var bytes = try #require(FileManager.default.contents(atPath: path))
        bytes[bytes.count / 2] ^= 0xFF
        try bytes.write(to: URL(fileURLWithPath: path))
        // Cut its key history file short too: start-up uses an older snapshot only if the file
        // still holds what that snapshot names, and the replay rebuilds the rest.
        let historyFile = try FileHandle(forWritingTo: URL(fileURLWithPath: cluster.dataDirectory(3) + "/key-history.log"))
        try historyFile.truncate(atOffset: try historyFile.seekToEnd() / 2)
        try historyFile.close()
        let afterDamage = try await restart3()
        let olderOrNone = afterDamage.split(separator: " ").first { $0.hasPrefix("snapshot=") }.flatMap { Height($0.dropFirst(9)) }
        #expect((olderOrNone ?? 0) < height(ofSnapshot: newest), "\(afterDamage)")
        // A history read over the rebuilt file, then enough blocks for a checkpoint to compare
        // every replica's state root (a replica that answered differently would stop).
        _ = try await client.execute(.history(key: Array("s0".utf8), limit: 1000), timeout: .seconds(20))
        for i in 0..<20 { _ = try await client.execute(.put(key: Array("t\(i)".utf8), value: [1])) }
        var caughtUp = false
        for _ in 0..<200 where !caughtUp {
            caughtUp = cluster.height(3) >= cluster.height(1)
            if !caughtUp { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(caughtUp, "replica 3 stayed at \(cluster.height(3)); replica 1 is at \(cluster.height(1))")
        let log = try String(contentsOfFile: cluster.directory + "/node-3.log", encoding: .utf8)
        #expect(log.contains("state snapshot unusable"))
        #expect(!log.contains("stopping:"), "replica 3 stopped")
        cluster.stopAll()
        try cluster.expectLedgersAgreeAndAudit(replicas: Array(0..<4))
    }

    /// Real processes with one Byzantine replica: the honest ones keep serving every request,
    /// and their logs agree and pass the auditor.
    @Test(.enabled(if: byzantineBinary.isBuilt, "skipped: bulwark-byzantine was not built"),
          arguments: [(0, ["equivocate"]), (0, ["withhold-pre-prepares", "lying-replies"]),
                      (2, ["conflicting-votes", "invalid-signatures", "impersonate", "lying-checkpoints", "flood-future",
                           "forged-state-transfer"]),
                      (1, ["mutate-integers"])])
    func oneByzantineReplica(replica: Int, behaviours: [String]) async throws {
        let cluster = try LocalCluster()
        for i in 0..<4 { try cluster.start(i, behaviours: i == replica ? behaviours : []) }
        let client = try client(cluster)
        defer { Task { await client.shutdown() } }
        var written = 0
        for i in 0..<40 {
            if let (result, _) = try? await client.execute(.put(key: Array("k\(i)".utf8), value: [UInt8(i)]), timeout: .seconds(20)),
               !result.isFailure {
                written += 1
            }
        }
        #expect(written == 40, "only \(written) of 40 writes completed with \(behaviours) at replica \(replica)")
        let (read, _) = try await client.execute(.get(key: Array("k7".utf8)))
        #expect(read == .value([7], version: read.versionValue))
        cluster.stopAll()
        let (readers, common) = try cluster.expectLedgersAgreeAndAudit(replicas: (0..<4).filter { $0 != replica })
        #expect(common >= 20)
        if replica == 0, behaviours == ["equivocate"] {
            // The lying primary was replaced: later blocks carry certificates of a later view.
            #expect(try readers[0].entry(at: common).certificate.view >= 1)
        }
    }

    /// A malicious client process (`bulwark-byzantine client`) attacks four honest replicas while
    /// an honest client writes: every honest write completes, the bad and oversized requests are
    /// counted and dropped, each of the attacker's request ids executes at most once, and the
    /// ledgers agree and pass the auditor.
    @Test(.enabled(if: byzantineBinary.isBuilt, "skipped: bulwark-byzantine was not built"))
    func aMaliciousClientCannotHurtHonestOnes() async throws {
        let (cluster, client) = try await servingCluster()
        defer { Task { await client.shutdown() } }
        let attackerKey = PrivateKey.generate()
        try KeyFile.write(attackerKey, to: cluster.directory + "/attacker.key")
        let attack = Task.detached {
            try byzantineBinary.run(["client", "--config", cluster.directory + "/cluster.json",
                                     "--key", cluster.directory + "/attacker.key", "--seconds", "4", "--interval-ms", "20"],
                                    timeout: .seconds(60))
        }
        var written = 0
        for i in 0..<40 {
            if let (result, _) = try? await client.execute(.put(key: Array("k\(i)".utf8), value: [UInt8(i)]), timeout: .seconds(20)),
               !result.isFailure {
                written += 1
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        let attacker = try await attack.value
        #expect(attacker.status == 0 && attacker.stdout.contains("oversized"), "\(attacker.stdout)\(attacker.stderr)")
        #expect(written == 40, "only \(written) of 40 honest writes completed under attack")
        let (read, _) = try await client.execute(.get(key: Array("k7".utf8)))
        #expect(read == .value([7], version: read.versionValue))

        // Every replica counted the attack's bad signatures and oversized requests and dropped them.
        for validator in cluster.config.validators {
            let metrics = String(decoding: ReplicaHTTP.get(validator.httpAddress, path: "/metrics") ?? Data(), as: UTF8.self)
            func count(_ series: String, _ reason: String) -> Double {
                metrics.split(separator: "\n").filter { $0.hasPrefix(series + "{") && $0.contains("reason=\"\(reason)\"") }
                    .compactMap { Double($0.split(separator: " ").last!) }.reduce(0, +)
            }
            #expect(count("bulwark_dropped_input_total", "bad_client_signature") + count("bulwark_rejected_messages_total", "invalidRequest") > 0,
                    "replica \(validator.id) counted no bad signature")
            #expect(count("bulwark_rejected_messages_total", "oversized") + count("bulwark_dropped_input_total", "undecodable_client_frame") > 0,
                    "replica \(validator.id) counted no oversized request")
        }

        cluster.stopAll()
        let (readers, common) = try cluster.expectLedgersAgreeAndAudit(replicas: Array(0..<4))
        var attackerIDs: [UInt64: Int] = [:]
        for height in stride(from: Height(1), through: common, by: 1) {
            for request in try readers[0].entry(at: height).block.requests where request.client == attackerKey.publicKey {
                attackerIDs[request.requestID, default: 0] += 1
            }
        }
        // The flood's valid requests were ordered like anyone's, each exactly once.
        #expect(!attackerIDs.isEmpty)
        #expect(attackerIDs.values.allSatisfy { $0 == 1 }, "an attacker request id executed twice")
    }

    /// `bulwark-verify follow` on a live replica's data directory verifies blocks as the
    /// replica writes them, and the digests it pins are the replica's.
    @Test func followAuditsALiveReplicasLedger() async throws {
        let (cluster, client) = try await servingCluster()
        let target = cluster.height(0) + 12
        let verify = ProductBinary("bulwark-verify")
        let outcome = NIOLockedValueBox<ProductBinary.Result?>(nil)
        let follower = Thread {
            let result = try? verify.run(["follow", cluster.dataDirectory(0), "--cluster", cluster.directory + "/cluster.json",
                                          "--until-height", "\(target)", "--interval-ms", "50"], timeout: .seconds(120))
            outcome.withLockedValue { $0 = result }
        }
        follower.start()
        var writes = 0
        while !follower.isFinished, writes < 300 {
            _ = try? await client.execute(.put(key: Array("follow-\(writes)".utf8), value: [1]), timeout: .seconds(5))
            writes += 1
        }
        while !follower.isFinished { try await Task.sleep(for: .milliseconds(20)) }
        let result = try #require(outcome.withLockedValue { $0 })
        #expect(result.status == 0, "\(result.stdout)\(result.stderr)")
        let lines = result.stdout.split(separator: "\n").filter { $0.hasPrefix("verified through height ") }
        #expect(lines.count >= 2, "the digest advanced as blocks landed: \(result.stdout)")
        cluster.stopAll()
        let reader = try BlockLogReader(directory: cluster.dataDirectory(0) + "/blocks")
        for line in lines {
            let digest = String(line.split(separator: " ")[6].dropLast())
            let height = try #require(LedgerDigest(parsing: digest)).height
            #expect(LedgerDigest.of(reader, height: height).description == digest, "\(line)")
        }
        #expect(lines.last.map { $0.contains("state certified through height") } == true)
    }

    /// A refused write reaches the user as a sentence the CLI renders from the result's code
    /// and fields (the ledger records only the code), with a non-zero exit.
    @Test func aRefusedTransferReadsAsASentence() async throws {
        let (cluster, _) = try await servingCluster()
        let options = ["--config", cluster.directory + "/cluster.json", "--key", cluster.directory + "/client.key"]
        let refused = try bulwarkBinary.run(["transfer", "acct/nobody", "acct/someone", "5"] + options, timeout: .seconds(60))
        #expect(refused.status != 0)
        #expect(refused.stdout.hasPrefix("not applied: write 0: balance -5 would fall below the minimum 0 (height "),
                "\(refused.stdout)\(refused.stderr)")
        let written = try bulwarkBinary.run(["put", "k", "v"] + options, timeout: .seconds(60))
        #expect(written.status == 0 && written.stdout.hasPrefix("ok (version "), "\(written.stdout)\(written.stderr)")
        cluster.stopAll()
    }

    @Test func badConfigurationStopsStartUpWithOneSentence() throws {
        let cluster = try LocalCluster()
        let keyPath = cluster.directory + "/replica-1.key"
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: keyPath)
        let open = try bulwarkBinary.run(["node", "--config", cluster.directory + "/cluster.json", "--key", keyPath,
                                          "--data", cluster.dataDirectory(1)])
        #expect(open.status != 0 && open.stderr.contains("chmod 600"))
        let stranger = try bulwarkBinary.run(["node", "--config", cluster.directory + "/cluster.json", "--key",
                                              cluster.directory + "/client.key", "--data", cluster.dataDirectory(1)])
        #expect(stranger.status != 0 && stranger.stderr.contains("is not a validator"))
        // Port in use: a second replica 2 while the first holds its ports (wait, bounded, until it does).
        try cluster.start(2)
        let port = Int(cluster.config.validators[2].replicaAddress.port)
        for _ in 0..<200 where LocalCluster.portsAreFree(port..<(port + 1)) { usleep(20_000) }
        #expect(!LocalCluster.portsAreFree(port..<(port + 1)))
        let second = try bulwarkBinary.run(["node", "--config", cluster.directory + "/cluster.json", "--key",
                                            cluster.directory + "/replica-2.key", "--data", cluster.directory + "/other"],
                                           timeout: .seconds(20))
        #expect(second.status != 0 && second.stderr.contains("cannot listen on"))
        cluster.stopAll()
    }
}

extension OperationResult {
    /// The version a get or write reported, for comparing values regardless of version.
    var versionValue: UInt64 {
        switch self {
        case let .value(_, version), let .written(version), let .balance(_, version): return version
        default: return 0
        }
    }
}
