import ArgumentParser
import BulwarkCore
import BulwarkStorage
import Foundation

struct Keygen: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate an Ed25519 key pair.",
        discussion: """
            Writes the private key to FILE with mode 0600 and prints the public key. Without \
            --out, the key is a client key at \(ClientKeyLocation.defaultPath).
            """
    )

    @Option(name: .long, help: ArgumentHelp("Where to write the private key.", valueName: "FILE"))
    var out: String?

    @Flag(name: .long, help: "Overwrite FILE if it exists.")
    var force = false

    func run() throws {
        let path = out ?? ClientKeyLocation.defaultPath
        let directory = PathName.directory(of: path)
        if !directory.isEmpty {
            do {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                        attributes: [.posixPermissions: 0o700])
            } catch {
                throw Self.fail(Failure("cannot create directory \(directory): \((error as NSError).localizedDescription)"))
            }
        }
        let key = PrivateKey.generate()
        do { try KeyFile.write(key, to: path, overwrite: force) } catch { throw Self.fail(error) }
        print(key.publicKey.hex)
    }
}

enum ClientKeyLocation {
    /// `$BULWARK_CLIENT_KEY`, else `~/.bulwark/client.key`.
    static var defaultPath: String {
        if let fromEnvironment = ProcessInfo.processInfo.environment["BULWARK_CLIENT_KEY"], !fromEnvironment.isEmpty {
            return fromEnvironment
        }
        return PathName.join(NSHomeDirectory(), ".bulwark/client.key")
    }
}
