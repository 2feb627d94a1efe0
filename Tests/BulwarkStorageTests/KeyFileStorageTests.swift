import BulwarkCore
@testable import BulwarkStorage
import Testing

/// Key files and a new cluster's files go through `FileSystem` like every other file a replica
/// writes: written whole or not at all, keys private, cluster.json public.
@Suite struct KeyFileStorageTests {
    @Test func clusterInitWritesPrivateKeysAndAPublicConfiguration() throws {
        let disk = SimulatedFileSystem()
        let config = try ClusterInit.run(nodes: 4, host: "127.0.0.1", basePort: 9000, directory: "/c", force: false,
                                         admins: 2, adminThreshold: 1, fileSystem: disk)
        for i in 0..<4 {
            let path = "/c/" + ClusterInit.keyFileName(replica: ReplicaID(i))
            #expect(try disk.permissions(path) == 0o600)
            #expect(try KeyFile.load(from: path, fileSystem: disk).publicKey == config.validators[i].publicKey)
        }
        #expect(try disk.permissions("/c/cluster.json") == 0o644)
        #expect(disk.durableBytes("/c/cluster.json") == disk.bytes("/c/cluster.json"), "cluster.json is synced")
        #expect(throws: ClusterInit.Failure.exists("/c/cluster.json")) {
            try ClusterInit.run(nodes: 4, host: "127.0.0.1", basePort: 9000, directory: "/c", force: false, fileSystem: disk)
        }
        #expect(!disk.paths.contains { $0.hasSuffix(".tmp") })
    }

    @Test func aKeyFileOthersCanReadIsRefused() throws {
        let disk = SimulatedFileSystem()
        let key = PrivateKey.generate()
        try KeyFile.write(key, to: "/k", fileSystem: disk)
        #expect(try KeyFile.load(from: "/k", fileSystem: disk).publicKey == key.publicKey)
        try disk.setPermissions("/k", 0o644)
        #expect(throws: KeyFileError.tooOpen(path: "/k", mode: 0o644)) { _ = try KeyFile.load(from: "/k", fileSystem: disk) }
        #expect(throws: KeyFileError.exists("/k")) { try KeyFile.write(key, to: "/k", fileSystem: disk) }
        #expect(throws: KeyFileError.notFound("/absent")) { _ = try KeyFile.load(from: "/absent", fileSystem: disk) }
    }

    /// A crash at any step of overwriting a key file leaves the old key or the new one, never
    /// a torn or empty file.
    @Test func aCrashWhileReplacingAKeyLeavesOneWholeKey() throws {
        let old = PrivateKey.generate(), new = PrivateKey.generate()
        for crashAt in 0..<8 {
            let disk = SimulatedFileSystem()
            try KeyFile.write(old, to: "/k", fileSystem: disk)
            disk.crashAfterOperations = disk.operations + crashAt
            try? KeyFile.write(new, to: "/k", overwrite: true, fileSystem: disk)
            if disk.hasCrashed { disk.crash(tornBytes: { $0 / 2 }) }
            disk.crashAfterOperations = nil
            let loaded = try KeyFile.load(from: "/k", fileSystem: disk).publicKey
            #expect(loaded == old.publicKey || loaded == new.publicKey, "crash at operation \(crashAt)")
        }
    }
}
