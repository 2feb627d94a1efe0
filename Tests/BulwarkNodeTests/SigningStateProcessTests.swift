import BulwarkClient
import BulwarkCore
import BulwarkTestSupport
import Foundation
import Testing

/// The tendermint#3418 case with real processes (SPEC.md §14.3): an old copy of a replica's
/// write-ahead log restored beside its newer ledger stops `bulwark node` with one sentence,
/// and the log that belongs with the ledger starts it again.
@Suite(.serialized, .enabled(if: bulwarkBinary.isBuilt, "skipped: the bulwark executable was not built"))
struct SigningStateProcessTests {
    @Test func anOldCopyOfTheWriteAheadLogStopsStartUp() async throws {
        let cluster = try LocalCluster()
        let dir = cluster.directory
        defer { cluster.stopAll() }
        for i in 0..<4 { try cluster.start(i) }
        func put(_ key: String) throws -> Bool {
            try bulwarkBinary.run(["put", key, "v", "--config", dir + "/cluster.json", "--key", dir + "/client.key", "--timeout", "20"],
                                  timeout: .seconds(40)).status == 0
        }
        var served = false
        for attempt in 0..<20 where !served { served = try put("warm-up-\(attempt)") }
        try #require(served, "the cluster never served")
        let wal = cluster.dataDirectory(1) + "/consensus.wal"
        let old = try Data(contentsOf: URL(fileURLWithPath: wal))
        // Past the next checkpoint (interval 8) and a few blocks beyond it, replica 1 voting.
        for i in 0..<12 { #expect(try put("later-\(i)")) }
        cluster.stop(1)
        let current = try Data(contentsOf: URL(fileURLWithPath: wal))
        try old.write(to: URL(fileURLWithPath: wal))
        let refused = try bulwarkBinary.run(["node", "--config", dir + "/cluster.json", "--key", dir + "/replica-1.key",
                                             "--data", cluster.dataDirectory(1)], timeout: .seconds(30))
        #expect(refused.status != 0 && refused.stderr.contains("older than the ledger"), "\(refused.stderr)")
        // With its own log back it starts and serves.
        try current.write(to: URL(fileURLWithPath: wal))
        try cluster.start(1)
        // Serving a second time (the first was before the stop).
        func servings() -> Int {
            ((try? String(contentsOfFile: dir + "/node-1.log", encoding: .utf8)) ?? "").components(separatedBy: "serving").count - 1
        }
        for _ in 0..<100 where servings() < 2 { try await Task.sleep(for: .milliseconds(50)) }
        #expect(servings() >= 2 && cluster.processes[1]?.isRunning == true, "replica 1 did not start with its own write-ahead log")
        #expect(try put("after-restore"))
    }
}

/// A replica's data directory wiped in the middle of the load while a Byzantine primary
/// equivocates (SPEC.md §14.4): started again as it was, it refuses and names `--rejoin`;
/// with `--rejoin` it catches up, reports its floor, and the ledgers agree and pass the audit.
@Suite(.serialized, .enabled(if: bulwarkBinary.isBuilt && byzantineBinary.isBuilt, "skipped: the executables were not built"))
struct RejoinProcessTests {
    @Test func aWipedReplicaRejoinsWhileAByzantinePrimaryEquivocates() async throws {
        let cluster = try LocalCluster()
        let dir = cluster.directory
        defer { cluster.stopAll() }
        try cluster.start(0, behaviours: ["equivocate"])
        for i in 1..<4 { try cluster.start(i) }
        func put(_ key: String, timeout: Int = 20) throws -> Bool {
            try bulwarkBinary.run(["put", key, "v", "--config", dir + "/cluster.json", "--key", dir + "/client.key",
                                   "--timeout", "\(timeout)"], timeout: .seconds(40)).status == 0
        }
        var served = false
        for attempt in 0..<20 where !served { served = try put("warm-up-\(attempt)") }
        try #require(served, "the cluster never served")
        for i in 0..<3 { #expect(try put("before-\(i)")) }
        /// Load from one process: `seconds` of 8 closed-loop clients, started and not waited for
        /// (a task blocked on it would hold one of the few threads every test shares).
        func load(seconds: Int) throws -> Process {
            let bench = Process()
            (bench.executableURL, bench.arguments) = bulwarkBinary.command(
                ["bench", "--clients", "8", "--duration", "\(seconds)", "--config", dir + "/cluster.json"], prefix: [])
            bench.standardOutput = FileHandle.nullDevice
            bench.standardError = FileHandle.nullDevice
            try bench.run()
            return bench
        }
        func finished(_ bench: Process) async throws -> Bool {
            for _ in 0..<1200 where bench.isRunning { try await Task.sleep(for: .milliseconds(50)) }
            if bench.isRunning { bench.terminate() }
            bench.waitUntilExit()
            return bench.terminationStatus == 0
        }
        // Wiped mid-load: the load goes on while replica 2 loses its disk.
        let writer = try load(seconds: 6)
        cluster.kill9(2)
        try FileManager.default.removeItem(atPath: cluster.dataDirectory(2))
        let refused = try bulwarkBinary.run(["node", "--config", dir + "/cluster.json", "--key", dir + "/replica-2.key",
                                             "--data", cluster.dataDirectory(2)], timeout: .seconds(30))
        #expect(refused.status != 0 && refused.stderr.contains("--rejoin"), "\(refused.stderr)")
        try cluster.start(2, options: ["--rejoin"])
        #expect(try await finished(writer), "the load failed while replica 2 rejoined")
        // It reports the floor a quorum gave it, and catches up past it.
        var status = ""
        for _ in 0..<200 where !status.contains("untilHeight") {
            status = ReplicaHTTPProbe.status(cluster.config.validators[2].httpAddress) ?? ""
            if !status.contains("untilHeight") { try await Task.sleep(for: .milliseconds(50)) }
        }
        #expect(status.contains("\"rejoining\":{"), "\(status)")
        let metrics = String(decoding: ReplicaHTTP.get(cluster.config.validators[2].httpAddress, path: "/metrics") ?? Data(), as: UTF8.self)
        let gauge = metrics.split(separator: "\n").first { $0.hasPrefix("bulwark_rejoining") }
        #expect(gauge.flatMap { Double($0.split(separator: " ").last ?? "") } == 1, "\(gauge ?? "no bulwark_rejoining gauge")")
        // Well past the floor's height (a quorum's height plus the window of 32).
        #expect(try await finished(try load(seconds: 4)))
        let top = (0..<4).map { cluster.height($0) }.max() ?? 0
        for _ in 0..<200 where cluster.height(2) < top { try await Task.sleep(for: .milliseconds(50)) }
        #expect(cluster.height(2) >= top, "replica 2 did not catch up: \((0..<4).map { cluster.height($0) })")
        var log2 = (try? String(contentsOfFile: dir + "/node-2.log", encoding: .utf8)) ?? ""
        #expect(log2.contains("rejoining: signing nothing at or below"), "\(log2.suffix(2000))")
        // Past the floor's height it waits for a view above the floor's: the primary of the
        // current view goes away for a while, the others change view (replica 2 may not ask
        // for the next one, but joins the one after), and replica 2 votes again.
        let view = Int(status.components(separatedBy: "\"view\":").last?.prefix { $0.isNumber } ?? "0") ?? 0
        let primary = view % 4
        if primary != 2 {
            cluster.kill9(primary)
            _ = try put("no-primary", timeout: 3)
            try cluster.start(primary)
        }
        var rejoined = false
        for i in 0..<30 where !rejoined {
            _ = try put("rejoin-\(i)", timeout: 5)
            rejoined = ReplicaHTTPProbe.status(cluster.config.validators[2].httpAddress)?.contains("\"rejoining\":null") == true
        }
        log2 = (try? String(contentsOfFile: dir + "/node-2.log", encoding: .utf8)) ?? ""
        #expect(rejoined && log2.contains("rejoined: past the signing floor"), "\(log2.suffix(3000))")
        cluster.stopAll()
        try cluster.expectLedgersAgreeAndAudit(replicas: [1, 2, 3])
    }
}
