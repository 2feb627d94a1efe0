import ArgumentParser
import BulwarkClient
import BulwarkCore
import Foundation

/// Options every client command shares.
struct ClientOptions: ParsableArguments {
    @Option(help: ArgumentHelp("The cluster's configuration (default: $BULWARK_CONFIG, else keys/local/cluster.json).",
                               valueName: "FILE"))
    var config: String?
    @Option(help: ArgumentHelp("The client's private key (default: $BULWARK_CLIENT_KEY, else ~/.bulwark/client.key).",
                               valueName: "FILE"))
    var key: String?
    @Option(help: "Seconds to wait for f+1 matching replies.") var timeout = 15

    func connect() throws -> LedgerClient {
        let configPath = config ?? ProcessInfo.processInfo.environment["BULWARK_CONFIG"] ?? "keys/local/cluster.json"
        let keyPath = key ?? ClientKeyLocation.defaultPath
        let cluster: ClusterConfig
        do { cluster = try ClusterConfig.load(from: configPath) } catch { throw Put.fail(error) }
        let privateKey: PrivateKey
        do { privateKey = try KeyFile.load(from: keyPath) } catch KeyFileError.notFound {
            throw Put.fail(Failure("no client key at \(keyPath); create one with: bulwark keygen --out \(keyPath)"))
        } catch {
            throw Put.fail(error)
        }
        return LedgerClient(config: cluster, key: privateKey)
    }

    /// Runs one operation and prints its result; exits non-zero if it failed.
    func run(_ operation: LedgerOperation) async throws {
        let client = try connect()
        let outcome: (OperationResult, Height)
        do {
            outcome = try await client.execute(operation, timeout: .seconds(timeout))
        } catch {
            await client.shutdown()
            throw Put.fail(error)
        }
        await client.shutdown()
        print(Self.describe(outcome.0, height: outcome.1))
        if outcome.0.isFailure { throw ExitCode.failure }
    }

    /// Printable UTF-8 as itself; anything else (balances, binary values) as hex.
    static func text(_ bytes: [UInt8]) -> String {
        if let string = String(validating: bytes, as: UTF8.self),
           string.unicodeScalars.allSatisfy({ $0.properties.generalCategory != .control }) {
            return string
        }
        return "0x" + Hex.encode(bytes)
    }

    static func describe(_ result: OperationResult, height: Height) -> String {
        switch result {
        case let .written(version): return "ok (version \(version), height \(height))"
        case let .deleted(existed): return existed ? "deleted (height \(height))" : "absent (height \(height))"
        case let .balance(amount, version): return "\(amount) (version \(version), height \(height))"
        case let .value(value, version):
            return value.map { "\(text($0)) (version \(version), height \(height))" } ?? "absent (height \(height))"
        case let .entries(entries):
            return entries.map { "\(text($0.key)) = \(text($0.value)) (version \($0.version))" }.joined(separator: "\n")
                + (entries.isEmpty ? "no keys (height \(height))" : "")
        case let .conditionFailed(reason): return "not applied: \(reason) (height \(height))"
        case let .rejected(reason): return "rejected: \(reason)"
        }
    }
}

struct Put: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Set KEY to VALUE.")
    @Argument var key: String
    @Argument var value: String
    @OptionGroup var options: ClientOptions
    func run() async throws { try await options.run(.put(key: Array(key.utf8), value: Array(value.utf8))) }
}

struct Get: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Read KEY (linearizable: the read is ordered like a write).")
    @Argument var key: String
    @OptionGroup var options: ClientOptions
    func run() async throws { try await options.run(.get(key: Array(key.utf8))) }
}

struct Delete: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Delete KEY.")
    @Argument var key: String
    @OptionGroup var options: ClientOptions
    func run() async throws { try await options.run(.delete(key: Array(key.utf8))) }
}

struct CompareAndSet: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cas", abstract: "Set KEY to VALUE only if its version is VERSION (0: only if absent).")
    @Argument var key: String
    @Argument var version: UInt64
    @Argument var value: String
    @OptionGroup var options: ClientOptions
    func run() async throws {
        try await options.run(.cas(key: Array(key.utf8), expectedVersion: version, value: Array(value.utf8)))
    }
}

struct Add: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Add DELTA to the integer balance at KEY, failing if the result would leave [--min, --max].")
    @Argument var key: String
    @Argument(help: "A signed integer; put options first and a negative value after --, e.g. `bulwark add acct --min 0 -- -5`.")
    var delta: Int64
    @Option var min: Int64 = 0
    @Option var max: Int64 = .max
    @OptionGroup var options: ClientOptions
    func validate() throws { guard min <= max else { throw ValidationError("--min must not exceed --max") } }
    func run() async throws { try await options.run(.add(key: Array(key.utf8), delta: delta, min: min, max: max)) }
}

struct RangeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "range", abstract: "List keys in [START, END) in byte order.")
    @Argument var start = ""
    @Argument(help: "Exclusive end; empty for no end.") var end = ""
    @Option var limit: UInt32 = 100
    @OptionGroup var options: ClientOptions
    func run() async throws {
        try await options.run(.range(start: Array(start.utf8), end: Array(end.utf8), limit: limit))
    }
}
