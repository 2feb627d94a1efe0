#if canImport(Glibc)
import Glibc
#endif

/// The directory `path` is in ("." for a bare name, "/" for a file at the root).
func parentDirectory(of path: String) -> String {
    guard let slash = path.lastIndex(of: "/") else { return "." }
    return slash == path.startIndex ? "/" : String(path[..<slash])
}

/// The few file operations storage needs. Two implementations: `PosixFileSystem` for real
/// disks and `SimulatedFileSystem`, which injects crashes and torn writes for tests.
public protocol FileSystem: AnyObject {
    func exists(_ path: String) -> Bool
    func createDirectory(_ path: String) throws(StorageError)
    /// File names (not paths) in `directory`, sorted.
    func list(_ directory: String) throws(StorageError) -> [String]
    func open(_ path: String, create: Bool) throws(StorageError) -> any StorageFile
    func remove(_ path: String) throws(StorageError)
    func rename(_ from: String, to: String) throws(StorageError)
    /// Makes creations, renames and removals in `directory` durable.
    func syncDirectory(_ directory: String) throws(StorageError)
    /// The permission bits of `path` (mode & 0o777). Files are created private (0600).
    func permissions(_ path: String) throws(StorageError) -> UInt32
    /// Sets the permission bits of `path` exactly.
    func setPermissions(_ path: String, _ mode: UInt32) throws(StorageError)
}

public protocol StorageFile: AnyObject {
    func size() throws(StorageError) -> UInt64
    func read(at offset: UInt64, count: Int) throws(StorageError) -> [UInt8]
    /// Appends at the end of the file (not yet durable).
    func append(_ bytes: [UInt8]) throws(StorageError)
    /// Makes everything appended so far durable (fdatasync).
    func sync() throws(StorageError)
    func truncate(to size: UInt64) throws(StorageError)
    func close()
}

public enum StorageError: Error, Equatable, Sendable, CustomStringConvertible {
    case io(path: String, operation: String, reason: String)
    case corrupt(path: String, offset: UInt64, reason: String)
    case damagedLog(LogDamage)
    case crashed

    public var description: String {
        switch self {
        case let .io(path, operation, reason): return "cannot \(operation) \(path): \(reason)"
        case let .corrupt(path, offset, reason): return "\(path) is damaged at byte \(offset): \(reason)"
        case let .damagedLog(damage): return damage.description
        case .crashed: return "simulated crash"
        }
    }
}

/// Damage found before the tail of the block log: the log is served only up to the height
/// before it.
public struct LogDamage: Equatable, Sendable, CustomStringConvertible {
    /// The first height that could not be read; for a damaged execution certificate that
    /// could still be decoded, the height it names.
    public var height: UInt64
    public var segment: String
    public var offset: UInt64
    public var reason: String
    /// The kind of record damaged: "block", "execution certificate", or "record" when even
    /// its type cannot be read.
    public var record: String = "block"

    public init(height: UInt64, segment: String, offset: UInt64, reason: String, record: String = "block") {
        self.height = height
        self.segment = segment
        self.offset = offset
        self.reason = reason
        self.record = record
    }

    /// The record kind stored under block-log record type `type` (nil: unreadable).
    public static func recordKind(type: UInt8?) -> String {
        switch type {
        case 1: return "block"
        case 2: return "execution certificate"
        case let type?: return "record of unknown type \(type)"
        case nil: return "record"
        }
    }

    public var description: String {
        "block log damaged at height \(height) (\(record) record, \(segment), byte \(offset)): \(reason)"
    }
}

public final class PosixFileSystem: FileSystem {
    public init() {}

    static func failure(_ path: String, _ operation: String) -> StorageError {
        .io(path: path, operation: operation, reason: String(cString: strerror(errno)))
    }

    public func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    public func createDirectory(_ path: String) throws(StorageError) {
        var prefix = path.hasPrefix("/") ? "/" : ""
        for part in path.split(separator: "/") {
            prefix += part
            if mkdir(prefix, 0o700) != 0 && errno != EEXIST { throw Self.failure(prefix, "create directory") }
            prefix += "/"
        }
    }

    public func list(_ directory: String) throws(StorageError) -> [String] {
        guard let dir = opendir(directory) else { throw Self.failure(directory, "list") }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    public func open(_ path: String, create: Bool) throws(StorageError) -> any StorageFile {
        let fd = Glibc.open(path, O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0), 0o600)
        guard fd >= 0 else { throw Self.failure(path, "open") }
        return PosixFile(fd: fd, path: path)
    }

    public func remove(_ path: String) throws(StorageError) {
        if unlink(path) != 0 && errno != ENOENT { throw Self.failure(path, "remove") }
    }

    public func rename(_ from: String, to: String) throws(StorageError) {
        if Glibc.rename(from, to) != 0 { throw Self.failure(from, "rename") }
    }

    public func syncDirectory(_ directory: String) throws(StorageError) {
        let fd = Glibc.open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw Self.failure(directory, "open directory") }
        defer { Glibc.close(fd) }
        if fsync(fd) != 0 { throw Self.failure(directory, "sync directory") }
    }

    public func permissions(_ path: String) throws(StorageError) -> UInt32 {
        var info = stat()
        guard stat(path, &info) == 0 else { throw Self.failure(path, "stat") }
        return UInt32(info.st_mode & 0o777)
    }

    public func setPermissions(_ path: String, _ mode: UInt32) throws(StorageError) {
        if chmod(path, mode_t(mode & 0o777)) != 0 { throw Self.failure(path, "set the permissions of") }
    }
}

final class PosixFile: StorageFile {
    let fd: Int32
    let path: String
    private var closed = false

    init(fd: Int32, path: String) {
        self.fd = fd
        self.path = path
    }

    deinit { close() }

    func size() throws(StorageError) -> UInt64 {
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw PosixFileSystem.failure(path, "stat") }
        return UInt64(info.st_size)
    }

    func read(at offset: UInt64, count: Int) throws(StorageError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let n = out.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + done, count - done, off_t(offset) + off_t(done)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw PosixFileSystem.failure(path, "read")
            }
            if n == 0 { break }
            done += n
        }
        return done == count ? out : Array(out.prefix(done))
    }

    func append(_ bytes: [UInt8]) throws(StorageError) {
        let end = try size()
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress! + done, bytes.count - done, off_t(end) + off_t(done)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw PosixFileSystem.failure(path, "write")
            }
            done += n
        }
    }

    func sync() throws(StorageError) {
        if fdatasync(fd) != 0 { throw PosixFileSystem.failure(path, "sync") }
    }

    func truncate(to size: UInt64) throws(StorageError) {
        if ftruncate(fd, off_t(size)) != 0 { throw PosixFileSystem.failure(path, "truncate") }
    }

    func close() {
        if !closed {
            closed = true
            Glibc.close(fd)
        }
    }
}
