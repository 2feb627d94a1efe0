import Foundation

/// A network address written `host:port`.
public struct Address: Hashable, Sendable, CustomStringConvertible, Codable {
    public var host: String
    public var port: UInt16

    public init(host: String, port: UInt16) {
        self.host = host
        self.port = port
    }

    /// Parses `host:port` or `[v6]:port`; nil if the host is empty, holds spaces, or the port
    /// is not 1...65535.
    public init?(parsing text: String) {
        let hostPart: Substring
        let portPart: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else { return nil }
            hostPart = text[text.index(after: text.startIndex)..<close]
            portPart = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":") else { return nil }
            hostPart = text[..<colon]
            portPart = text[text.index(after: colon)...]
            guard !hostPart.contains(":") else { return nil }
        }
        guard !hostPart.isEmpty, !hostPart.contains(where: { $0.isWhitespace || $0 == "/" }),
              portPart.allSatisfy(\.isASCII), let port = UInt16(portPart), port > 0 else { return nil }
        self.host = String(hostPart)
        self.port = port
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let parsed = Address(parsing: text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                                                    debugDescription: "'\(text)' is not a host:port address"))
        }
        self = parsed
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}

/// One replica as the cluster knows it.
public struct Validator: Hashable, Sendable, Codable {
    public var id: ReplicaID
    public var publicKey: PublicKey
    /// Where the other replicas reach this one.
    public var replicaAddress: Address
    /// Where clients send requests.
    public var clientAddress: Address
    /// `/metrics` and `/status`.
    public var httpAddress: Address

    public init(id: ReplicaID, publicKey: PublicKey, replicaAddress: Address, clientAddress: Address, httpAddress: Address) {
        self.id = id
        self.publicKey = publicKey
        self.replicaAddress = replicaAddress
        self.clientAddress = clientAddress
        self.httpAddress = httpAddress
    }

    enum CodingKeys: String, CodingKey { case id, publicKey, replicaAddress, clientAddress, httpAddress }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(ReplicaID.self, forKey: .id)
        let keyHex = try c.decode(String.self, forKey: .publicKey)
        guard let key = PublicKey(hex: keyHex) else {
            throw DecodingError.dataCorruptedError(forKey: .publicKey, in: c,
                                                   debugDescription: "validator \(id): public key must be 64 hex digits")
        }
        publicKey = key
        replicaAddress = try c.decode(Address.self, forKey: .replicaAddress)
        clientAddress = try c.decode(Address.self, forKey: .clientAddress)
        httpAddress = try c.decode(Address.self, forKey: .httpAddress)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(publicKey.hex, forKey: .publicKey)
        try c.encode(replicaAddress, forKey: .replicaAddress)
        try c.encode(clientAddress, forKey: .clientAddress)
        try c.encode(httpAddress, forKey: .httpAddress)
    }
}

/// Protocol settings shared by every replica. Each limit names its unit.
public struct ProtocolParameters: Hashable, Sendable, Codable {
    /// A primary proposes a block once it holds this many requests...
    public var batchRequestsMax: Int = 512
    /// ...or this many bytes of requests...
    public var batchBytesMax: Int = 1 << 20
    /// ...or when the oldest pending request has waited this long.
    public var batchDelayMs: UInt64 = 2
    /// A primary holds partial batches back while this many of its blocks are proposed but
    /// not yet committed (PBFT's batching window): under load, requests gather into larger
    /// blocks instead of paying a block's signatures and fsyncs for a few requests each.
    public var blocksInFlightMax: UInt64 = 1
    /// Heights in flight above the low watermark (PBFT's log size L).
    public var watermarkWindow: UInt64 = 64
    /// An execution certificate (checkpoint) is formed every this many heights.
    public var checkpointInterval: UInt64 = 16
    /// A backup starts a view change when a request it knows of has waited this long.
    public var viewChangeTimeoutMs: UInt64 = 2000
    /// A backup asks for a view change when the requests it holds wait on average longer than
    /// the batch delay plus this slack plus four prepare exchanges before the primary proposes
    /// them (the primary's turnaround; see `TurnaroundMonitor`). The slack covers an honest
    /// primary on a saturated machine: 64 closed-loop clients on 2 cores see means near 40 ms.
    public var turnaroundSlackMs: UInt64 = 50
    /// A backup rejects a proposal whose timestamp is further than this from its own clock.
    public var timestampSkewMsMax: UInt64 = 30_000
    public var keyBytesMax: Int = 256
    public var valueBytesMax: Int = 64 * 1024
    public var requestBytesMax: Int = 128 * 1024
    /// Guards plus writes in one transaction.
    public var txnOperationsMax: Int = 64
    public var rangeResultsMax: Int = 1000
    /// Largest network frame accepted, checked before allocating.
    public var frameBytesMax: Int = 16 << 20
    /// A replica in state transfer asks the next peer when the one it asked sent nothing
    /// useful for this long.
    public var stateTransferTimeoutMs: UInt64 = 1000

    public init() {}

    // Every field is optional in JSON, taking the default above when absent.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = ProtocolParameters()
        batchRequestsMax = try c.decodeIfPresent(Int.self, forKey: .batchRequestsMax) ?? d.batchRequestsMax
        batchBytesMax = try c.decodeIfPresent(Int.self, forKey: .batchBytesMax) ?? d.batchBytesMax
        batchDelayMs = try c.decodeIfPresent(UInt64.self, forKey: .batchDelayMs) ?? d.batchDelayMs
        blocksInFlightMax = try c.decodeIfPresent(UInt64.self, forKey: .blocksInFlightMax) ?? d.blocksInFlightMax
        watermarkWindow = try c.decodeIfPresent(UInt64.self, forKey: .watermarkWindow) ?? d.watermarkWindow
        checkpointInterval = try c.decodeIfPresent(UInt64.self, forKey: .checkpointInterval) ?? d.checkpointInterval
        viewChangeTimeoutMs = try c.decodeIfPresent(UInt64.self, forKey: .viewChangeTimeoutMs) ?? d.viewChangeTimeoutMs
        turnaroundSlackMs = try c.decodeIfPresent(UInt64.self, forKey: .turnaroundSlackMs) ?? d.turnaroundSlackMs
        timestampSkewMsMax = try c.decodeIfPresent(UInt64.self, forKey: .timestampSkewMsMax) ?? d.timestampSkewMsMax
        keyBytesMax = try c.decodeIfPresent(Int.self, forKey: .keyBytesMax) ?? d.keyBytesMax
        valueBytesMax = try c.decodeIfPresent(Int.self, forKey: .valueBytesMax) ?? d.valueBytesMax
        requestBytesMax = try c.decodeIfPresent(Int.self, forKey: .requestBytesMax) ?? d.requestBytesMax
        txnOperationsMax = try c.decodeIfPresent(Int.self, forKey: .txnOperationsMax) ?? d.txnOperationsMax
        rangeResultsMax = try c.decodeIfPresent(Int.self, forKey: .rangeResultsMax) ?? d.rangeResultsMax
        frameBytesMax = try c.decodeIfPresent(Int.self, forKey: .frameBytesMax) ?? d.frameBytesMax
        stateTransferTimeoutMs = try c.decodeIfPresent(UInt64.self, forKey: .stateTransferTimeoutMs) ?? d.stateTransferTimeoutMs
    }

    /// The range each setting must fall in. Every bound is far from where arithmetic on the
    /// setting could overflow (a view-change timeout is doubled up to ten times and added to
    /// a clock in milliseconds; the watermark window is added to heights), so a value that
    /// passes can never crash a replica.
    public static let ranges: [(name: String, range: ClosedRange<Int128>, value: @Sendable (ProtocolParameters) -> Int128)] = [
        ("batchRequestsMax", 1...Int128(CodecLimits.requestsPerBlockMax), { Int128($0.batchRequestsMax) }),
        ("batchBytesMax", 1...Int128(CodecLimits.bytesMax), { Int128($0.batchBytesMax) }),
        ("batchDelayMs", 0...60_000, { Int128($0.batchDelayMs) }),
        ("blocksInFlightMax", 1...Int128(ProtocolBounds.watermarkWindowMax), { Int128($0.blocksInFlightMax) }),
        ("watermarkWindow", 2...Int128(ProtocolBounds.watermarkWindowMax), { Int128($0.watermarkWindow) }),
        ("checkpointInterval", 1...Int128(ProtocolBounds.watermarkWindowMax / 2), { Int128($0.checkpointInterval) }),
        ("viewChangeTimeoutMs", 10...3_600_000, { Int128($0.viewChangeTimeoutMs) }),
        ("turnaroundSlackMs", 0...3_600_000, { Int128($0.turnaroundSlackMs) }),
        ("timestampSkewMsMax", 1...86_400_000, { Int128($0.timestampSkewMsMax) }),
        ("keyBytesMax", 1...Int128(CodecLimits.keyBytesMax), { Int128($0.keyBytesMax) }),
        ("valueBytesMax", 1...Int128(CodecLimits.valueBytesMax), { Int128($0.valueBytesMax) }),
        ("requestBytesMax", 1...Int128(CodecLimits.bytesMax), { Int128($0.requestBytesMax) }),
        ("txnOperationsMax", 1...Int128(CodecLimits.operationsMax), { Int128($0.txnOperationsMax) }),
        ("rangeResultsMax", 1...100_000, { Int128($0.rangeResultsMax) }),
        ("frameBytesMax", 64 * 1024...Int128(CodecLimits.bytesMax) * 2, { Int128($0.frameBytesMax) }),
        ("stateTransferTimeoutMs", 10...3_600_000, { Int128($0.stateTransferTimeoutMs) }),
    ]

    /// The first setting that is out of range, as a sentence naming it; nil when all are sound.
    func problem() -> String? {
        for (name, range, value) in Self.ranges where !range.contains(value(self)) {
            return "parameter \(name) must be between \(range.lowerBound) and \(range.upperBound), not \(value(self))"
        }
        // Relations between settings; every operand is already bounded above, so no sum or
        // product here can overflow.
        if requestBytesMax > frameBytesMax / 2 { return "parameter requestBytesMax must be at most half of frameBytesMax" }
        if batchBytesMax > frameBytesMax / 2 { return "parameter batchBytesMax must be at most half of frameBytesMax" }
        if watermarkWindow < 2 * checkpointInterval {
            return "parameter watermarkWindow (\(watermarkWindow)) must be at least twice checkpointInterval (\(checkpointInterval))"
        }
        if blocksInFlightMax > watermarkWindow {
            return "parameter blocksInFlightMax must be between 1 and watermarkWindow (\(watermarkWindow))"
        }
        // A range or history reply — its keys and values, and each entry's lengths and version —
        // must fit one frame (SPEC.md §8.3, §16). Its first entry is taken whatever its size:
        // at most a key and a value, and no more than one request could write.
        let firstEntryMax = Swift.min(keyBytesMax + valueBytesMax, requestBytesMax)
        let replyBytesMax = Swift.max(resultBytesMax, firstEntryMax) + rangeResultsMax * Self.resultEntryOverheadBytes
            + Self.replyOverheadBytes
        if replyBytesMax > frameBytesMax {
            return "a range reply of rangeResultsMax (\(rangeResultsMax)) entries may reach \(replyBytesMax) bytes, over frameBytesMax (\(frameBytesMax)); lower rangeResultsMax or raise frameBytesMax"
        }
        return nil
    }

    /// A range or history result stops before the entry that would take its keys and values
    /// past this many bytes (it always holds at least one): a quarter of a frame, and at most
    /// 4 MiB. What the ledger returns depends on it, so it follows the configuration.
    public var resultBytesMax: Int { Swift.min(4 << 20, frameBytesMax / 4) }
    /// A result entry's bytes besides its key and value (two lengths and a version), and a
    /// reply frame's besides its result.
    static let resultEntryOverheadBytes = 16
    static let replyOverheadBytes = 1024
}

/// The public configuration of a cluster: `cluster.json` (ARCHITECTURE.md §5) is the configuration
/// of epoch 0, and every later epoch's is the complete configuration an approved change
/// carried (SPEC.md §13).
public struct ClusterConfig: Hashable, Sendable, Codable {
    public var clusterID: ClusterID
    /// Sorted by strictly increasing id. Ids need not be contiguous (a removed replica's id is
    /// never reused); the primary of view v is the validator at position `v mod n`.
    public var validators: [Validator]
    public var parameters: ProtocolParameters
    /// The keys that approve configuration changes; distinct. Empty: the configuration can
    /// never change.
    public var admins: [PublicKey]
    /// How many distinct admins must approve a change: 1...admins.count, or 0 with no admins.
    public var adminThreshold: Int
    /// What a client key with no binding in the policy may do (SPEC.md §19): `open`,
    /// everything; `closed`, nothing.
    public var policy: ClientPolicy

    /// The most admins one configuration may name.
    public static let adminsMax = 64

    enum CodingKeys: String, CodingKey { case clusterID, validators, parameters, admins, adminThreshold, policy }

    /// Validates as it builds: an invalid configuration cannot be constructed.
    public init(clusterID: ClusterID, validators: [Validator], parameters: ProtocolParameters = .init(),
                admins: [PublicKey] = [], adminThreshold: Int? = nil, policy: ClientPolicy = .open) throws(ConfigError) {
        self.clusterID = clusterID
        self.validators = validators.sorted { $0.id < $1.id }
        self.parameters = parameters
        self.admins = admins
        self.adminThreshold = adminThreshold ?? (admins.isEmpty ? 0 : 1)
        self.policy = policy
        try validate()
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let idHex = try c.decode(String.self, forKey: .clusterID)
        guard let id = ClusterID(hex: idHex) else {
            throw DecodingError.dataCorruptedError(forKey: .clusterID, in: c,
                                                   debugDescription: "clusterID must be 64 hex digits")
        }
        var admins: [PublicKey] = []
        for (index, hex) in (try c.decodeIfPresent([String].self, forKey: .admins) ?? []).enumerated() {
            guard let key = PublicKey(hex: hex) else {
                throw DecodingError.dataCorruptedError(forKey: .admins, in: c,
                                                       debugDescription: "admin \(index): public key must be 64 hex digits")
            }
            admins.append(key)
        }
        let policyName = try c.decodeIfPresent(String.self, forKey: .policy) ?? "open"
        guard let policy = [ClientPolicy.open, .closed].first(where: { $0.description == policyName }) else {
            throw DecodingError.dataCorruptedError(forKey: .policy, in: c, debugDescription: "policy must be \"open\" or \"closed\"")
        }
        try self.init(clusterID: id,
                      validators: try c.decode([Validator].self, forKey: .validators),
                      parameters: try c.decodeIfPresent(ProtocolParameters.self, forKey: .parameters) ?? .init(),
                      admins: admins,
                      adminThreshold: try c.decodeIfPresent(Int.self, forKey: .adminThreshold),
                      policy: policy)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(clusterID.hex, forKey: .clusterID)
        try c.encode(validators, forKey: .validators)
        try c.encode(parameters, forKey: .parameters)
        try c.encode(admins.map(\.hex), forKey: .admins)
        try c.encode(adminThreshold, forKey: .adminThreshold)
        try c.encode(policy.description, forKey: .policy)
    }

    /// n: the number of replicas.
    public var n: Int { validators.count }
    /// f = ⌊(n−1)/3⌋: the number of Byzantine replicas tolerated.
    public var f: Int { (n - 1) / 3 }
    /// ⌈(n+f+1)/2⌉ (= 2f+1 when n = 3f+1): any two quorums share at least one honest replica.
    public var quorum: Int { (n + f + 2) / 2 }
    /// f+1: enough matching replies that at least one came from an honest replica.
    public var replyQuorum: Int { f + 1 }

    public func primary(of view: View) -> ReplicaID { validators[Int(view % UInt64(n))].id }

    /// The validator with this id, if any (binary search: validators are sorted by id).
    public func validator(_ id: ReplicaID) -> Validator? {
        var low = 0
        var high = validators.count
        while low < high {
            let mid = (low + high) / 2
            if validators[mid].id < id { low = mid + 1 } else { high = mid }
        }
        return low < validators.count && validators[low].id == id ? validators[low] : nil
    }

    /// The validators' ids, increasing.
    public var ids: [ReplicaID] { validators.map(\.id) }

    public func replicaID(of key: PublicKey) -> ReplicaID? {
        validators.first { $0.publicKey == key }?.id
    }

    /// SHA-256 over the tagged canonical encoding: what admins approve and what an epoch names.
    public var hash: Digest { Digest.tagged(.config, cluster: clusterID, encoded()) }

    func validate() throws(ConfigError) {
        guard validators.count >= 4 else { throw .tooFewReplicas(validators.count) }
        // Every certificate holds at most one vote per validator, and decoders refuse more votes.
        guard validators.count <= CodecLimits.votesMax else {
            throw .badParameter("a cluster may have at most \(CodecLimits.votesMax) validators, but this one has \(validators.count)")
        }
        for (a, b) in zip(validators, validators.dropFirst()) where a.id == b.id { throw .duplicateID(a.id) }
        var keys: [PublicKey: ReplicaID] = [:]
        var addresses: [Address: ReplicaID] = [:]
        for v in validators {
            if let other = keys.updateValue(v.id, forKey: v.publicKey) {
                throw .duplicateKey(first: other, second: v.id)
            }
            for address in [v.replicaAddress, v.clientAddress, v.httpAddress] {
                if let other = addresses.updateValue(v.id, forKey: address) {
                    throw .duplicateAddress(address, first: other, second: v.id)
                }
            }
        }
        if let problem = parameters.problem() { throw .badParameter(problem) }
        // A block entry — at most max(batchBytesMax, requestBytesMax) of requests, its header
        // and a commit certificate with every validator's vote — must fit one frame, so that a
        // state-transfer answer always carries at least one block (SPEC.md §14.2, §16).
        let entryBytesMax = max(parameters.batchBytesMax, parameters.requestBytesMax) + validators.count * Self.voteBytes
            + Self.entryOverheadBytes
        guard entryBytesMax <= parameters.frameBytesMax else {
            throw .badParameter("a block of batchBytesMax with a vote of each of the \(validators.count) validators (\(entryBytesMax) bytes) must fit frameBytesMax (\(parameters.frameBytesMax))")
        }
        // A VIEW-CHANGE and a NEW-VIEW carry headers and signatures, never bodies: their size
        // follows from the window and the validator count alone (SPEC.md §14.1, §16).
        let viewChangeBytes = MessageSizes.newViewBytesMax(validators: validators.count, quorum: quorum,
                                                           window: Int(parameters.watermarkWindow))
        guard viewChangeBytes <= parameters.frameBytesMax else {
            throw .badParameter("a NEW-VIEW with \(validators.count) validators and a watermarkWindow of \(parameters.watermarkWindow) may reach \(viewChangeBytes) bytes, over frameBytesMax (\(parameters.frameBytesMax)); use a smaller window, fewer validators or a larger frameBytesMax")
        }
        guard admins.count <= Self.adminsMax else { throw .badAdmins("at most \(Self.adminsMax) admins, not \(admins.count)") }
        if Set(admins).count != admins.count { throw .badAdmins("an admin key is listed twice") }
        if admins.isEmpty {
            guard adminThreshold == 0 else { throw .badAdmins("adminThreshold must be 0 when there are no admins") }
        } else if !(1...admins.count).contains(adminThreshold) {
            throw .badAdmins("adminThreshold must be between 1 and the \(admins.count) admins, not \(adminThreshold)")
        }
        // Hosts are written into the canonical encoding with a one-byte-safe bound.
        for v in validators {
            for address in [v.replicaAddress, v.clientAddress, v.httpAddress] where address.host.utf8.count > Self.hostBytesMax {
                throw .badParameter("validator \(v.id): host '\(address.host.prefix(40))…' is longer than \(Self.hostBytesMax) bytes")
            }
        }
    }

    /// The longest host name an address may carry.
    public static let hostBytesMax = 253
    /// A vote in a certificate (id and signature), and what a block entry holds besides its
    /// requests and votes (header, lengths and the frame's own tags), with room to spare.
    static let voteBytes = 66
    static let entryOverheadBytes = 1024

    /// The layout `bulwark cluster init` writes: validator i has id i and listens on
    /// `basePort + 3i` for replicas, `+1` for clients and `+2` for HTTP.
    public static func layout(keys: [PublicKey], host: String, basePort: Int, clusterID: ClusterID,
                              parameters: ProtocolParameters = .init(), admins: [PublicKey] = [],
                              adminThreshold: Int? = nil, policy: ClientPolicy = .open) throws(ConfigError) -> ClusterConfig {
        let validators = keys.enumerated().map { i, key in
            let port = UInt16(basePort + 3 * i)
            return Validator(id: ReplicaID(i), publicKey: key, replicaAddress: Address(host: host, port: port),
                             clientAddress: Address(host: host, port: port + 1), httpAddress: Address(host: host, port: port + 2))
        }
        return try ClusterConfig(clusterID: clusterID, validators: validators, parameters: parameters,
                                 admins: admins, adminThreshold: adminThreshold, policy: policy)
    }

    /// Reads and validates `cluster.json`.
    public static func load(from path: String) throws(ConfigError) -> ClusterConfig {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw .unreadable(path: path, reason: (error as NSError).localizedDescription)
        }
        do {
            return try JSONDecoder().decode(ClusterConfig.self, from: data)
        } catch let error as ConfigError {
            throw error
        } catch let DecodingError.dataCorrupted(context) {
            throw .malformed(path: path, reason: context.debugDescription)
        } catch let DecodingError.keyNotFound(key, context) {
            throw .malformed(path: path, reason: "missing field '\(key.stringValue)'\(context.codingPath.pathDescription)")
        } catch let DecodingError.typeMismatch(_, context) {
            throw .malformed(path: path, reason: "\(context.debugDescription)\(context.codingPath.pathDescription)")
        } catch {
            throw .malformed(path: path, reason: "\(error)")
        }
    }

    public func jsonData() -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        // Encoding plain strings and integers cannot fail.
        return try! encoder.encode(self)
    }
}

extension [any CodingKey] {
    var pathDescription: String {
        isEmpty ? "" : " at " + map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
    }
}

/// A configuration mistake, described in one sentence.
public enum ConfigError: Error, Equatable, CustomStringConvertible {
    case tooFewReplicas(Int)
    case duplicateID(ReplicaID)
    case badAdmins(String)
    case duplicateKey(first: ReplicaID, second: ReplicaID)
    case duplicateAddress(Address, first: ReplicaID, second: ReplicaID)
    case badParameter(String)
    case unreadable(path: String, reason: String)
    case malformed(path: String, reason: String)

    public var description: String {
        switch self {
        case let .tooFewReplicas(n):
            return "a cluster needs at least 4 replicas to tolerate one Byzantine fault, but this one has \(n)"
        case let .duplicateID(id):
            return "validator id \(id) appears twice"
        case let .badAdmins(problem):
            return "admins: \(problem)"
        case let .duplicateKey(first, second):
            return "validators \(first) and \(second) have the same public key"
        case let .duplicateAddress(address, first, second):
            return first == second
                ? "validator \(first) uses address \(address) twice"
                : "validators \(first) and \(second) both use address \(address)"
        case let .badParameter(problem):
            return problem
        case let .unreadable(path, reason):
            return "cannot read cluster configuration \(path): \(reason)"
        case let .malformed(path, reason):
            return "cluster configuration \(path) is not valid: \(reason)"
        }
    }
}

/// The largest encodings of the view-change messages an honest replica builds, from the
/// parameters alone (SPEC.md §14.1): the configuration check proves they fit a frame. Each
/// size below is the canonical encoding's, field by field; a test builds the largest messages
/// and compares.
public enum MessageSizes {
    /// version, cluster, epoch, height, view, timestamp, proposer, prev, txRoot, historyRoot.
    public static let header = 1 + 32 + 8 + 8 + 8 + 8 + 2 + 32 + 32 + 32
    /// A PRE-PREPARE without its body: view, header, replica, signature.
    public static let proposal = 8 + header + 2 + 64
    /// view, height, blockHash, replica, signature.
    public static let prepare = 8 + 8 + 32 + 2 + 64
    static let vote = 2 + 64
    static let listCount = 4
    /// A Merkle accumulator of at most 2^62 leaves: its size and one peak per set bit.
    static let accumulatorMax = 8 + 62 * 32

    /// A prepared certificate: the proposal and quorum − 1 prepares.
    public static func preparedCertificate(quorum: Int) -> Int { proposal + listCount + (quorum - 1) * prepare }

    /// A stable checkpoint proof: the execution certificate (version, height, blockHash,
    /// stateRoot, a vote of each validator), the header, and the history before it.
    public static func checkpointProofMax(validators: Int) -> Int {
        (1 + 8 + 32 + 32 + listCount + validators * vote) + header + accumulatorMax
    }

    /// newView, the optional checkpoint proof, a certificate per height of the window, replica, signature.
    public static func viewChangeBytesMax(validators: Int, quorum: Int, window: Int) -> Int {
        8 + 1 + checkpointProofMax(validators: validators) + listCount + window * preparedCertificate(quorum: quorum) + 2 + 64
    }

    /// view, a quorum of VIEW-CHANGEs, a proposal per height of the window, replica,
    /// signature; and the message's version and tag with the peer frame's tag and epoch.
    public static func newViewBytesMax(validators: Int, quorum: Int, window: Int) -> Int {
        8 + listCount + quorum * viewChangeBytesMax(validators: validators, quorum: quorum, window: window)
            + listCount + window * proposal + 2 + 64 + frameOverhead
    }

    /// Message version and tag, peer-frame tag and epoch, with room for the frame's length.
    public static let frameOverhead = 64
}
