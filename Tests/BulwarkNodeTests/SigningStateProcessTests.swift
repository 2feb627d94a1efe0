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
