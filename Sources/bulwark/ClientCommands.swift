import ArgumentParser
import BulwarkClient
import BulwarkCore
import BulwarkStateMachine
import BulwarkStorage
import Foundation

/// The cluster's configuration file, found the same way by every command that reaches a cluster.
struct ClusterFile: ParsableArguments {
    @Option(help: ArgumentHelp("The cluster's configuration (default: $BULWARK_CONFIG, else keys/local/cluster.json).",
                               valueName: "FILE"))
    var config: String?

    /// `given`, else $BULWARK_CONFIG, else the local development cluster's.
    static func path(_ given: String?) -> String {
        given ?? ProcessInfo.processInfo.environment["BULWARK_CONFIG"] ?? "keys/local/cluster.json"
    }

    var path: String { Self.path(config) }
}

/// Options every client command shares.
struct ClientOptions: ParsableArguments {
    @OptionGroup var cluster: ClusterFile
    @Option(help: ArgumentHelp("The client's private key (default: $BULWARK_CLIENT_KEY, else ~/.bulwark/client.key).",
                               valueName: "FILE"))
    var key: String?
    @Option(help: "Seconds to wait for f+1 matching replies.") var timeout = 15
    @Flag(help: "Keys and values are given in hex (e.g. 00ff10), for bytes that are not text.") var hex = false

    /// The bytes of a key or value as given: its UTF-8 text, or with `--hex` the bytes its
    /// hex digits spell. Never rewritten: what is not valid stops the command.
    func bytes<S: StringProtocol>(_ argument: S) throws -> [UInt8] {
        guard hex else { return Array(argument.utf8) }
        guard let bytes = Hex.decode(String(argument)) else {
            throw Put.fail(Failure("'\(argument)' is not hex (an even number of digits 0-9, a-f)"))
        }
        return bytes
    }

    func connect() throws -> LedgerClient {
        let configPath = cluster.path
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

    /// Runs one operation and prints its result; exits non-zero if it failed. The client first
    /// follows the cluster to its current configuration (cluster.json may be epochs old).
    /// `fastRead`: a `get` goes the fast path first (SPEC.md §8.6), ordered when it must be.
    func run(_ operation: LedgerOperation, fastRead: Bool = false) async throws {
        let client = try connect()
        let outcome: (OperationResult, Height)
        do {
            try await client.follow(timeout: .seconds(timeout))
            if fastRead, case let .get(key) = operation {
                let read = try await client.read(key, timeout: .seconds(timeout))
                outcome = (read.result, read.height)
            } else {
                outcome = try await client.execute(operation, timeout: .seconds(timeout))
            }
        } catch {
            await client.shutdown()
            throw Put.fail(error)
        }
        await client.shutdown()
        try Self.refuseDenied(outcome.0, height: outcome.1)
        print(Self.describe(outcome.0, height: outcome.1))
        if outcome.0.isFailure { throw ExitCode.failure }
    }

    /// A request the policy denied ends the command with the denial, as an error.
    static func refuseDenied(_ result: OperationResult, height: Height) throws {
        guard case let .permissionDenied(denial) = result else { return }
        throw Put.fail(Failure("\(denial) (recorded at height \(height))"))
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
        case let .history(entries):
            guard !entries.isEmpty else { return "never written (height \(height))" }
            return entries.map { entry in
                "height \(entry.height): " + (entry.value.map { text($0) } ?? "deleted")
            }.joined(separator: "\n")
        case let .conditionFailed(reason): return "not applied: \(reason) (height \(height))"
        case let .rejected(reason): return "rejected: \(reason)"
        case .notKept: return "the read ran, but its result is no longer kept; run it again"
        case let .configApproved(progress): return "\(progress) (height \(height))"
        case let .configRefused(refusal): return "not applied: \(refusal) (height \(height))"
        case let .governance(governance): return "epoch \(governance.epoch), configuration \(governance.config.hash.hex) (height \(height))"
        case let .permissionDenied(denial): return "\(denial) (height \(height))"
        case let .policyApproved(progress): return "\(progress) (height \(height))"
        case let .policyRefused(refusal): return "not applied: \(refusal) (height \(height))"
        case let .policy(policy):
            return "policy at change \(policy.sequence): \(policy.roles.count) roles, \(policy.bindings.count) bindings (height \(height))"
        case .withheld: return "ok (height \(height); what the key held is not shown to a caller without read on it)"
        }
    }
}

struct Put: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Set KEY to VALUE.")
    @Argument var key: String
    @Argument var value: String
    @OptionGroup var options: ClientOptions
    func run() async throws { try await options.run(.put(key: try options.bytes(key), value: try options.bytes(value))) }
}

struct Get: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Read KEY (linearizable).",
        discussion: """
            Answered without ordering when 2f+1 replicas give the same value at the same height \
            (SPEC.md §8.6), and ordered like a write otherwise; --ordered always orders it.
            """)
    @Argument var key: String
    @Flag(help: "Order the read through consensus, skipping the fast path.") var ordered = false
    @OptionGroup var options: ClientOptions
    func run() async throws { try await options.run(.get(key: try options.bytes(key)), fastRead: !ordered) }
}

struct Delete: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Delete KEY.")
    @Argument var key: String
    @OptionGroup var options: ClientOptions
    func run() async throws { try await options.run(.delete(key: try options.bytes(key))) }
}

struct CompareAndSet: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cas", abstract: "Set KEY to VALUE only if its version is VERSION (0: only if absent).")
    @Argument var key: String
    @Argument var version: UInt64
    @Argument var value: String
    @OptionGroup var options: ClientOptions
    func run() async throws {
        try await options.run(.cas(key: try options.bytes(key), expectedVersion: version, value: try options.bytes(value)))
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
    func run() async throws { try await options.run(.add(key: try options.bytes(key), delta: delta, min: min, max: max)) }
}

struct RangeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "range", abstract: "List keys in [START, END) in byte order.")
    @Argument var start = ""
    @Argument(help: "Exclusive end; empty for no end.") var end = ""
    @Option var limit: UInt32 = 100
    @OptionGroup var options: ClientOptions
    func run() async throws {
        try await options.run(.range(start: try options.bytes(start), end: try options.bytes(end), limit: limit))
    }
}

struct History: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List KEY's newest versions, oldest first, with the height of the block that wrote each.",
        discussion: "Linearizable, like get. A deletion shows as 'deleted'.")
    @Argument var key: String
    @Option(help: "At most this many versions (the cluster caps it at rangeResultsMax).") var limit: UInt32 = 20
    @OptionGroup var options: ClientOptions
    func run() async throws { try await options.run(.history(key: try options.bytes(key), limit: limit)) }
}

struct Txn: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Apply several writes atomically, only if every guard holds.",
        discussion: """
            Example: bulwark txn --if-absent lock --put lock=alice --add alice:-10:0 --add bob:10 \
            (an add is KEY:DELTA or KEY:DELTA:MIN, with MIN 0 by default).
            """
    )
    @Option(name: .customLong("put"), help: ArgumentHelp("KEY=VALUE", valueName: "KEY=VALUE")) var puts: [String] = []
    @Option(name: .customLong("delete"), help: ArgumentHelp("KEY", valueName: "KEY")) var deletes: [String] = []
    @Option(name: .customLong("add"), help: ArgumentHelp("KEY:DELTA[:MIN]", valueName: "KEY:DELTA")) var adds: [String] = []
    @Option(name: .customLong("if-version"), help: ArgumentHelp("KEY:VERSION", valueName: "KEY:VERSION")) var versions: [String] = []
    @Option(name: .customLong("if-exists"), help: ArgumentHelp("KEY", valueName: "KEY")) var exists: [String] = []
    @Option(name: .customLong("if-absent"), help: ArgumentHelp("KEY", valueName: "KEY")) var absent: [String] = []
    @OptionGroup var options: ClientOptions

    func parse() throws -> LedgerOperation {
        var guards: [LedgerOperation.Guard] = []
        var writes: [LedgerOperation.Write] = []
        for item in versions {
            let parts = item.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count == 2, let version = UInt64(parts[1]) else { throw ValidationError("--if-version takes KEY:VERSION, not '\(item)'") }
            guards.append(.versionEquals(key: try options.bytes(parts[0]), version: version))
        }
        guards += try exists.map { .exists(key: try options.bytes($0)) }
        guards += try absent.map { .absent(key: try options.bytes($0)) }
        for item in puts {
            guard let equals = item.firstIndex(of: "=") else { throw ValidationError("--put takes KEY=VALUE, not '\(item)'") }
            writes.append(.put(key: try options.bytes(item[..<equals]), value: try options.bytes(item[item.index(after: equals)...])))
        }
        writes += try deletes.map { .delete(key: try options.bytes($0)) }
        for item in adds {
            let parts = item.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count == 2 || parts.count == 3, let delta = Int64(parts[1]),
                  let min = parts.count == 3 ? Int64(parts[2]) : 0 else {
                throw ValidationError("--add takes KEY:DELTA or KEY:DELTA:MIN, not '\(item)'")
            }
            writes.append(.add(key: try options.bytes(parts[0]), delta: delta, min: min, max: .max))
        }
        guard !writes.isEmpty else { throw ValidationError("a transaction needs at least one --put, --delete or --add") }
        return .txn(guards: guards, writes: writes)
    }

    func validate() throws { _ = try parse() }
    func run() async throws { try await options.run(try parse()) }
}

struct Transfer: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Move AMOUNT from balance FROM to balance TO atomically; fails as a whole if FROM would go below zero.")
    @Argument var from: String
    @Argument var to: String
    @Argument var amount: Int64
    @OptionGroup var options: ClientOptions

    func validate() throws {
        guard amount > 0 else { throw ValidationError("AMOUNT must be positive") }
        guard from != to else { throw ValidationError("FROM and TO must differ") }
    }

    func run() async throws {
        try await options.run(.transfer(from: try options.bytes(from), to: try options.bytes(to), amount: amount))
    }
}

struct Balance: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Read the integer balance at KEY (linearizable).")
    @Argument var key: String
    @OptionGroup var options: ClientOptions
    func run() async throws {
        let client = try options.connect()
        defer { Task { await client.shutdown() } }
        let result: OperationResult
        let height: Height
        do { (result, height) = try await client.execute(.get(key: try options.bytes(key)), timeout: .seconds(options.timeout)) } catch {
            throw Self.fail(error)
        }
        try ClientOptions.refuseDenied(result, height: height)
        guard case let .value(value, version) = result else { throw Self.fail(Failure("unexpected result \(result)")) }
        guard let bytes = value else { return print("0 (absent, height \(height))") }
        guard let balance = KeyValueState.decodeBalance(bytes) else {
            throw Self.fail(Failure("the value at \(key) is not a balance"))
        }
        print("\(balance) (version \(version), height \(height))")
    }
}

struct Prove: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Read KEY with a proof: its value at the newest certified checkpoint, checked here against the cluster's signatures.",
        discussion: """
            The answer is checked by this command alone: the execution certificate must carry a quorum of \
            validator signatures over the state root, and the Merkle proof must tie the value (or its absence) \
            to that root, so no replica is trusted. It reads the state at the newest checkpoint (at most one \
            checkpoint interval behind the latest block), whose height is printed. --out writes the proof for \
            `bulwark-verify proof`.
            """)
    @Argument var key: String
    @Option(help: ArgumentHelp("Also write the proof to this file.", valueName: "FILE")) var out: String?
    @OptionGroup var options: ClientOptions

    func run() async throws {
        let client = try options.connect()
        let bundle: KeyProofBundle
        do {
            bundle = try await client.prove(try options.bytes(key), timeout: .seconds(options.timeout))
        } catch {
            await client.shutdown()
            throw Self.fail(error)
        }
        await client.shutdown()
        let proof = bundle.proof
        let signers = bundle.certificate.votes.map { "\($0.replica)" }.joined(separator: ", ")
        if let value = proof.value {
            print("\(key) = \(ClientOptions.text(value)) (version \(proof.version))")
        } else {
            print("\(key) is absent")
        }
        print("proven at height \(proof.height), state root \(bundle.certificate.stateRoot), signed by replicas \(signers)")
        if let out {
            do { try Data(bundle.fileText.utf8).write(to: URL(fileURLWithPath: out)) } catch {
                throw Self.fail(Failure("cannot write \(out): \(error.localizedDescription)"))
            }
            print("wrote \(out)")
        }
    }
}
