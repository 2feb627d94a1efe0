/// An in-memory file system that models what a crash keeps: appended bytes are volatile until
/// `sync`, directory changes (creations, renames, removals) until `syncDirectory`. `crash()`
/// keeps only what was durable, and optionally a torn prefix of each file's unsynced tail.
/// `crashAfterOperations` makes the n-th write or sync throw `StorageError.crashed`, so a test
/// can crash at every boundary. Faults a real disk has can be switched on: a full disk, opens
/// that fail (descriptors run out), and a flipped bit (a latent sector error). Deterministic:
/// nothing depends on hashing order.
public final class SimulatedFileSystem: FileSystem {
    /// A file's bytes. Files only grow by appends and shrink by truncation (of both views),
    /// so what is durable is always a prefix of the bytes: `durableCount` of them.
    final class Content {
        var bytes: [UInt8] = []
        var durableCount = 0
        /// Permission bits: private on creation, as `PosixFileSystem` creates files.
        var mode: UInt32 = 0o600
    }

    private var directories: Set<String> = []
    private var current: [String: Content] = [:]
    private var durable: [String: Content] = [:]
    /// Write and sync operations performed so far.
    public private(set) var operations = 0
    /// When set, the operation with this number (counting from 0) throws instead of happening.
    public var crashAfterOperations: Int?
    public private(set) var hasCrashed = false
    /// While set, every append fails as on a full disk (ENOSPC).
    public var diskFull = false
    /// This many opens fail next, as when descriptors run out (EMFILE).
    public var failingOpens = 0

    public init() {}

    /// The reason an injected open failure gives.
    public static let tooManyOpenFiles = "Too many open files (simulated)"

    func tick() throws(StorageError) {
        if hasCrashed { throw .crashed }
        if let limit = crashAfterOperations, operations >= limit {
            hasCrashed = true
            throw .crashed
        }
        operations += 1
    }

    /// Reboots: keeps durable state, plus `tornBytes(unsyncedCount)` bytes of each file's
    /// unsynced tail (0 keeps none), asked file by file in path order.
    public func crash(tornBytes: (Int) -> Int = { _ in 0 }) {
        for path in durable.keys.sorted() {
            let content = durable[path]!
            let unsynced = content.bytes.count - content.durableCount
            let keep = min(unsynced, max(0, unsynced > 0 ? tornBytes(unsynced) : 0))
            content.bytes.removeLast(unsynced - keep)
            content.durableCount = content.bytes.count
        }
        current = durable
        hasCrashed = false
        crashAfterOperations = nil
    }

    /// The disk is wiped or replaced: every file and directory is gone, durable or not.
    public func wipe() {
        directories = []
        current = [:]
        durable = [:]
        hasCrashed = false
        crashAfterOperations = nil
    }

    /// Flips one bit of a file's contents, durable or not, as a latent sector error would.
    public func corrupt(_ path: String, at offset: Int) {
        guard let content = current[path], offset >= 0, offset < content.bytes.count else { return }
        content.bytes[offset] ^= 0x10
    }

    public func bytes(_ path: String) -> [UInt8]? { current[path]?.bytes }

    /// The bytes of `path` a crash now would keep.
    public func durableBytes(_ path: String) -> [UInt8]? {
        guard let content = current[path] else { return nil }
        return Array(content.bytes.prefix(content.durableCount))
    }

    /// Bytes of `path` written but not yet synced (0 for a file that does not exist).
    public func unsyncedBytes(_ path: String) -> Int {
        guard let content = current[path] else { return 0 }
        return content.bytes.count - content.durableCount
    }

    /// Every file's path, sorted.
    public var paths: [String] { current.keys.sorted() }

    public func exists(_ path: String) -> Bool { current[path] != nil || directories.contains(path) }

    public func createDirectory(_ path: String) throws(StorageError) { directories.insert(path) }

    public func list(_ directory: String) throws(StorageError) -> [String] {
        let prefix = directory.hasSuffix("/") ? directory : directory + "/"
        return current.keys.filter { $0.hasPrefix(prefix) && !$0.dropFirst(prefix.count).contains("/") }
            .map { String($0.dropFirst(prefix.count)) }.sorted()
    }

    public func open(_ path: String, create: Bool) throws(StorageError) -> any StorageFile {
        if failingOpens > 0 {
            failingOpens -= 1
            throw .io(path: path, operation: "open", reason: Self.tooManyOpenFiles)
        }
        if current[path] == nil {
            guard create else { throw .io(path: path, operation: "open", reason: "no such file") }
            try tick()
            current[path] = Content()
        }
        return SimulatedFile(fileSystem: self, path: path)
    }

    public func remove(_ path: String) throws(StorageError) {
        try tick()
        current[path] = nil
    }

    public func rename(_ from: String, to: String) throws(StorageError) {
        try tick()
        guard let content = current[from] else { throw .io(path: from, operation: "rename", reason: "no such file") }
        current[to] = content
        current[from] = nil
    }

    public func permissions(_ path: String) throws(StorageError) -> UInt32 {
        guard let content = current[path] else { throw .io(path: path, operation: "stat", reason: "no such file") }
        return content.mode
    }

    public func setPermissions(_ path: String, _ mode: UInt32) throws(StorageError) {
        guard let content = current[path] else { throw .io(path: path, operation: "set the permissions of", reason: "no such file") }
        content.mode = mode & 0o777
    }

    public func syncDirectory(_ directory: String) throws(StorageError) {
        try tick()
        let prefix = directory.hasSuffix("/") ? directory : directory + "/"
        for path in Array(durable.keys) where path.hasPrefix(prefix) && current[path] == nil { durable[path] = nil }
        for (path, content) in current where path.hasPrefix(prefix) { durable[path] = content }
    }

    func content(_ path: String) throws(StorageError) -> Content {
        if hasCrashed { throw .crashed }
        guard let content = current[path] else { throw .io(path: path, operation: "use", reason: "file was removed") }
        return content
    }
}

final class SimulatedFile: StorageFile {
    let fileSystem: SimulatedFileSystem
    let path: String

    init(fileSystem: SimulatedFileSystem, path: String) {
        self.fileSystem = fileSystem
        self.path = path
    }

    func size() throws(StorageError) -> UInt64 { UInt64(try fileSystem.content(path).bytes.count) }

    func read(at offset: UInt64, count: Int) throws(StorageError) -> [UInt8] {
        let content = try fileSystem.content(path)
        guard offset < UInt64(content.bytes.count) else { return [] }
        return Array(content.bytes[Int(offset)..<min(content.bytes.count, Int(offset) + count)])
    }

    func append(_ bytes: [UInt8]) throws(StorageError) {
        let content = try fileSystem.content(path)
        if fileSystem.diskFull { throw .io(path: path, operation: "write", reason: "No space left on device") }
        try fileSystem.tick()
        content.bytes.append(contentsOf: bytes)
    }

    func sync() throws(StorageError) {
        let content = try fileSystem.content(path)
        try fileSystem.tick()
        content.durableCount = content.bytes.count
    }

    func truncate(to size: UInt64) throws(StorageError) {
        let content = try fileSystem.content(path)
        try fileSystem.tick()
        let count = min(content.bytes.count, Int(clamping: size))
        content.bytes.removeLast(content.bytes.count - count)
        content.durableCount = min(content.durableCount, count)
    }

    func close() {}
}
