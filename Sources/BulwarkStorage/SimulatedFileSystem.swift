/// An in-memory file system that models what a crash keeps: appended bytes are volatile until
/// `sync`, directory changes until `syncDirectory`. `crash()` keeps only what was durable, and
/// optionally a torn prefix of each file's unsynced tail. `crashAfterOperations` makes the
/// n-th write or sync throw `StorageError.crashed`, so a test can crash at every boundary.
public final class SimulatedFileSystem: FileSystem {
    final class Content {
        var durable: [UInt8] = []
        var current: [UInt8] = []
    }

    private var directories: Set<String> = []
    private var current: [String: Content] = [:]
    private var durable: [String: Content] = [:]
    /// Write and sync operations performed so far.
    public private(set) var operations = 0
    /// When set, the operation with this number (counting from 0) throws instead of happening.
    public var crashAfterOperations: Int?
    public private(set) var hasCrashed = false

    public init() {}

    func tick() throws(StorageError) {
        if hasCrashed { throw .crashed }
        if let limit = crashAfterOperations, operations >= limit {
            hasCrashed = true
            throw .crashed
        }
        operations += 1
    }

    /// Reboots: keeps durable state, plus `tornBytes(unsyncedCount)` bytes of each file's
    /// unsynced tail (0 keeps none).
    public func crash(tornBytes: (Int) -> Int = { _ in 0 }) {
        for (path, content) in durable {
            let unsynced = content.current.count > content.durable.count
                && Array(content.current.prefix(content.durable.count)) == content.durable
                ? Array(content.current.dropFirst(content.durable.count)) : []
            let keep = min(unsynced.count, max(0, tornBytes(unsynced.count)))
            content.current = content.durable + unsynced.prefix(keep)
            content.durable = content.current
            durable[path] = content
        }
        current = durable
        hasCrashed = false
        crashAfterOperations = nil
    }

    /// Flips one bit of a file's durable contents, as a latent sector error would.
    public func corrupt(_ path: String, at offset: Int) {
        guard let content = current[path], offset < content.current.count else { return }
        content.current[offset] ^= 0x10
        if offset < content.durable.count { content.durable[offset] ^= 0x10 }
    }

    public func bytes(_ path: String) -> [UInt8]? { current[path]?.current }

    public func exists(_ path: String) -> Bool { current[path] != nil || directories.contains(path) }

    public func createDirectory(_ path: String) throws(StorageError) { directories.insert(path) }

    public func list(_ directory: String) throws(StorageError) -> [String] {
        let prefix = directory.hasSuffix("/") ? directory : directory + "/"
        return current.keys.filter { $0.hasPrefix(prefix) && !$0.dropFirst(prefix.count).contains("/") }
            .map { String($0.dropFirst(prefix.count)) }.sorted()
    }

    public func open(_ path: String, create: Bool) throws(StorageError) -> any StorageFile {
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

    func size() throws(StorageError) -> UInt64 { UInt64(try fileSystem.content(path).current.count) }

    func read(at offset: UInt64, count: Int) throws(StorageError) -> [UInt8] {
        let bytes = try fileSystem.content(path).current
        guard offset < UInt64(bytes.count) else { return [] }
        return Array(bytes[Int(offset)..<min(bytes.count, Int(offset) + count)])
    }

    func append(_ bytes: [UInt8]) throws(StorageError) {
        let content = try fileSystem.content(path)
        try fileSystem.tick()
        content.current.append(contentsOf: bytes)
    }

    func sync() throws(StorageError) {
        let content = try fileSystem.content(path)
        try fileSystem.tick()
        content.durable = content.current
    }

    func truncate(to size: UInt64) throws(StorageError) {
        let content = try fileSystem.content(path)
        try fileSystem.tick()
        content.current = Array(content.current.prefix(Int(size)))
        content.durable = Array(content.durable.prefix(Int(size)))
    }

    func close() {}
}
