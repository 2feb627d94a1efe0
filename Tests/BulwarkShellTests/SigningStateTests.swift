import BulwarkConsensus
import BulwarkCore
@testable import BulwarkShell
import BulwarkStorage
import Testing

/// Signing state cannot roll back silently (SPEC.md §14.3): a write-ahead log of another key
/// or cluster, or one older than the ledger beside it, stops start-up.
@Suite struct SigningStateTests {
    /// Replaces `path` on `disk` with `bytes`, durably.
    static func put(_ bytes: [UInt8], at path: String, on disk: SimulatedFileSystem) throws {
        let file = try disk.open(path, create: true)
        try file.truncate(to: 0)
        try file.append(bytes)
        try file.sync()
        file.close()
    }

    static func startupError(_ cluster: ShellCluster, _ i: Int) -> String? {
        do {
            try cluster.start(i)
            return nil
        } catch {
            return "\(error)"
        }
    }

    @Test func aWriteAheadLogOfAnotherKeyStopsStartUp() throws {
        let cluster = ShellCluster()
        for _ in 0..<3 {
            cluster.request(to: [0, 1, 2, 3])
            cluster.run(rounds: 5)
        }
        let theirs = try #require(cluster.disks[2].bytes("/data/consensus.wal"))
        cluster.shells[1] = nil
        try Self.put(theirs, at: "/data/consensus.wal", on: cluster.disks[1])
        let error = try #require(Self.startupError(cluster, 1), "replica 1 started with replica 2's write-ahead log")
        #expect(error.contains("belongs to another replica key or cluster"), "\(error)")
    }

    /// The tendermint#3418 case: an old copy of the log restored beside a newer ledger.
    @Test func anOldCopyOfTheWriteAheadLogStopsStartUp() throws {
        let cluster = ShellCluster()
        cluster.request(to: [0, 1, 2, 3])
        cluster.run(rounds: 5)
        let old = try #require(cluster.disks[1].bytes("/data/consensus.wal"))
        // On to a height above the stable checkpoint (interval 4), with replica 1 voting.
        for _ in 0..<5 {
            cluster.request(to: [0, 1, 2, 3])
            cluster.run(rounds: 5)
        }
        let height = cluster.shell(1).height
        #expect(height % 4 != 0 && height > 4, "height \(height)")
        cluster.shells[1] = nil
        // Its own log restarts it fine.
        try cluster.start(1)
        cluster.shells[1] = nil
        try Self.put(old, at: "/data/consensus.wal", on: cluster.disks[1])
        let error = try #require(Self.startupError(cluster, 1), "replica 1 started with an old copy of its write-ahead log")
        #expect(error.contains("older than the ledger"), "\(error)")
    }

    /// The log's last record rots (the vote it held was sent): start-up refuses, naming the way
    /// back, where it once took the record for a write a crash cut short and dropped it. With
    /// the log moved aside, --rejoin starts the replica on its ledger below a floor above
    /// every height it could have voted at, and it follows the cluster.
    @Test func aRottedLastRecordStopsStartUpAndRejoinBringsTheReplicaBack() throws {
        let cluster = ShellCluster()
        for _ in 0..<3 {
            cluster.request(to: [0, 1, 2, 3])
            cluster.run(rounds: 5)
        }
        let height = cluster.shell(1).height
        cluster.shells[1] = nil
        let path = "/data/consensus.wal"
        var bytes = try #require(cluster.disks[1].bytes(path))
        bytes[bytes.count - 1] ^= 0x01
        try Self.put(bytes, at: path, on: cluster.disks[1])
        let error = try #require(Self.startupError(cluster, 1), "replica 1 started on a log whose last record rotted")
        #expect(error.contains("is unreadable") && error.contains("start the replica with --rejoin"), "\(error)")
        try cluster.disks[1].rename(path, to: path + ".damaged")
        try cluster.start(1, startup: .rejoin)
        cluster.run(rounds: 3, stepMs: 100)
        #expect(cluster.shell(1).height == height, "it kept its ledger")
        let floor = try #require(cluster.shell(1).core.signingFloor)
        #expect(floor.height >= height + cluster.config.parameters.watermarkWindow, "\(floor)")
        for _ in 0..<2 {
            cluster.request(to: [0, 1, 2, 3])
            cluster.run(rounds: 5)
        }
        #expect(cluster.shell(1).height == cluster.shell(0).height && cluster.shell(1).height > height)
    }

    /// Issue 29 item 9, confirmed: a write-ahead log lost beside a surviving ledger that ends at
    /// a stable checkpoint. The older-log check looked only above that checkpoint, found
    /// nothing, and the replica started with a new log and no floor, free to sign again at the
    /// heights and views its lost log had voted in. A new log beside a ledger holding this
    /// replica's votes in this epoch now stops start-up, naming --rejoin, which brings it back.
    @Test func aLostWriteAheadLogBesideALedgerAtACheckpointStopsStartUp() throws {
        let cluster = ShellCluster()
        for _ in 0..<12 where cluster.shell(1).height < 8 || cluster.shell(1).height % 4 != 0 {
            cluster.request(to: [0, 1, 2, 3])
            cluster.run(rounds: 5)
        }
        let height = cluster.shell(1).height
        #expect(height % 4 == 0 && height >= 8, "height \(height)")
        cluster.shells[1] = nil
        try cluster.disks[1].remove("/data/consensus.wal")
        let error = try #require(Self.startupError(cluster, 1), "replica 1 started with a new log beside its ledger")
        #expect(error.contains("write-ahead log") && error.contains("--rejoin"), "\(error)")
        try cluster.start(1, startup: .rejoin)
        cluster.run(rounds: 3, stepMs: 100)
        let floor = try #require(cluster.shell(1).core.signingFloor)
        #expect(floor.height >= height + cluster.config.parameters.watermarkWindow, "\(floor)")
    }

    /// A replica that never voted (one that joined, its ledger fetched) starts a new log.
    @Test func aNewLogBesideALedgerWithoutThisReplicasVotesStarts() throws {
        let cluster = ShellCluster()
        cluster.shells[3] = nil
        for _ in 0..<3 {
            cluster.request(to: [0, 1, 2])
            cluster.run(rounds: 5)
        }
        // Replica 3's disk gets replica 0's ledger, without any log: no vote of 3 is in it.
        cluster.disks[3].wipe()
        for path in try cluster.disks[0].list("/data/blocks") {
            try Self.put(try #require(cluster.disks[0].bytes("/data/blocks/" + path)), at: "/data/blocks/" + path, on: cluster.disks[3])
        }
        #expect(Self.startupError(cluster, 3) == nil)
        #expect(cluster.shell(3).height == cluster.shell(0).height)
    }
}
