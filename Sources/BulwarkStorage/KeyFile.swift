import BulwarkCore
import Foundation

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
    public static func write(_ key: PrivateKey, to path: String, overwrite: Bool = false,
                             fileSystem: any FileSystem = PosixFileSystem()) throws(KeyFileError) {
        if !overwrite && fileSystem.exists(path) { throw .exists(path) }
        let json = "{\n  \"type\": \"\(type)\",\n  \"publicKey\": \"\(key.publicKey.hex)\",\n  \"seed\": \"\(Hex.encode(key.seedForKeyFile()))\"\n}\n"
        do {
            try writeAtomically(fileSystem, directory: parentDirectory(of: path), name: PathName.lastComponent(of: path),
                                bytes: Array(json.utf8), mode: 0o600)
        } catch {
            throw .unwritable(path: path, reason: Self.reason(error))
        }
    }

    public static func load(from path: String, fileSystem: any FileSystem = PosixFileSystem()) throws(KeyFileError) -> PrivateKey {
        guard fileSystem.exists(path) else { throw .notFound(path) }
        let bytes: [UInt8]
        do {
            let mode = try fileSystem.permissions(path)
            guard mode & 0o077 == 0 else { throw KeyFileError.tooOpen(path: path, mode: mode) }
            bytes = try readAll(fileSystem, path)
        } catch let error as KeyFileError {
            throw error
        } catch {
            throw .unreadable(path: path, reason: Self.reason(error))
        }
        guard let contents = try? JSONDecoder().decode(Contents.self, from: Data(bytes)), contents.type == type else {
            throw .malformed(path: path, reason: "not a Bulwark private key file")
        }
        guard let seed = Hex.decode(contents.seed), let key = PrivateKey(seed: seed) else {
            throw .malformed(path: path, reason: "the seed must be 64 hex digits")
        }
        guard key.publicKey.hex == contents.publicKey.lowercased() else { throw .publicKeyMismatch(path) }
        return key
    }
}

extension KeyFile {
    /// A storage error's reason alone (the path is said once, by the caller's sentence).
    static func reason(_ error: any Error) -> String {
        if case let StorageError.io(_, _, reason) = error { return reason }
        return "\(error)"
    }
}

public enum KeyFileError: Error, Equatable, CustomStringConvertible {
    case exists(String)
    case notFound(String)
    case unreadable(path: String, reason: String)
    case unwritable(path: String, reason: String)
    case tooOpen(path: String, mode: UInt32)
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
