import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A private key file: JSON holding the 32-byte Ed25519 seed and, for humans, its public key.
/// The file must be mode 0600 (no access for group or others); loading refuses anything else,
/// as ssh does, because a readable validator key lets anyone sign in that validator's name.
public enum KeyFile {
    static let type = "bulwark-ed25519-private-key"

    struct Contents: Codable {
        var type: String
        var publicKey: String
        var seed: String
    }

    /// Writes `key` to `path` with mode 0600. Without `overwrite`, an existing file is an error.
    /// The bytes go to a temporary file in the same directory that is fsynced, then renamed
    /// into place, so a crash leaves either the old file or the whole new one.
    public static func write(_ key: PrivateKey, to path: String, overwrite: Bool = false) throws(KeyFileError) {
        if !overwrite && FileManager.default.fileExists(atPath: path) { throw .exists(path) }
        let json = "{\n  \"type\": \"\(type)\",\n  \"publicKey\": \"\(key.publicKey.hex)\",\n  \"seed\": \"\(Hex.encode(key.seedForKeyFile()))\"\n}\n"
        try writeAtomically(Array(json.utf8), to: path, mode: 0o600)
    }

    public static func load(from path: String) throws(KeyFileError) -> PrivateKey {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw errno == ENOENT ? .notFound(path) : .unreadable(path: path, reason: String(cString: strerror(errno)))
        }
        let mode = info.st_mode & 0o777
        guard mode & 0o077 == 0 else { throw .tooOpen(path: path, mode: mode) }
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw .unreadable(path: path, reason: (error as NSError).localizedDescription)
        }
        guard let contents = try? JSONDecoder().decode(Contents.self, from: data), contents.type == type else {
            throw .malformed(path: path, reason: "not a Bulwark private key file")
        }
        guard let seed = Hex.decode(contents.seed), let key = PrivateKey(seed: seed) else {
            throw .malformed(path: path, reason: "the seed must be 64 hex digits")
        }
        guard key.publicKey.hex == contents.publicKey.lowercased() else { throw .publicKeyMismatch(path) }
        return key
    }
}

public enum KeyFileError: Error, Equatable, CustomStringConvertible {
    case exists(String)
    case notFound(String)
    case unreadable(path: String, reason: String)
    case unwritable(path: String, reason: String)
    case tooOpen(path: String, mode: mode_t)
    case malformed(path: String, reason: String)
    case publicKeyMismatch(String)

    public var description: String {
        switch self {
        case let .exists(path): return "\(path) already exists; pass --force to overwrite it"
        case let .notFound(path): return "key file \(path) does not exist"
        case let .unreadable(path, reason): return "cannot read key file \(path): \(reason)"
        case let .unwritable(path, reason): return "cannot write \(path): \(reason)"
        case let .tooOpen(path, mode):
            return "key file \(path) is accessible by other users (mode \(String(mode, radix: 8))); run: chmod 600 \(path)"
        case let .malformed(path, reason): return "key file \(path) is damaged: \(reason)"
        case let .publicKeyMismatch(path): return "key file \(path) is damaged: its public key does not match its seed"
        }
    }
}

/// Writes `bytes` to a temporary file beside `path`, fsyncs it, renames it over `path` and
/// fsyncs the directory.
func writeAtomically(_ bytes: [UInt8], to path: String, mode: mode_t) throws(KeyFileError) {
    let directory = PathName.directory(of: path)
    let temporary = path + ".tmp-\(getpid())"
    let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
    guard fd >= 0 else { throw .unwritable(path: path, reason: String(cString: strerror(errno))) }
    var failure: String?
    bytes.withUnsafeBytes { raw in
        var written = 0
        while written < raw.count {
            let n = Glibc.write(fd, raw.baseAddress! + written, raw.count - written)
            if n < 0 {
                if errno == EINTR { continue }
                failure = String(cString: strerror(errno))
                return
            }
            written += n
        }
    }
    // open() applies the umask; set the mode exactly.
    if failure == nil && fchmod(fd, mode) != 0 { failure = String(cString: strerror(errno)) }
    if failure == nil && fsync(fd) != 0 { failure = String(cString: strerror(errno)) }
    close(fd)
    if failure == nil && rename(temporary, path) != 0 { failure = String(cString: strerror(errno)) }
    if let failure {
        unlink(temporary)
        throw .unwritable(path: path, reason: failure)
    }
    // The rename is durable only once the directory is: without this a crash could bring the
    // old file back.
    let dirfd = open(directory.isEmpty ? "." : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    guard dirfd >= 0 else { throw .unwritable(path: path, reason: "cannot open its directory: \(String(cString: strerror(errno)))") }
    defer { close(dirfd) }
    guard fsync(dirfd) == 0 else { throw .unwritable(path: path, reason: "cannot sync its directory: \(String(cString: strerror(errno)))") }
}
