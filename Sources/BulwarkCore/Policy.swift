/// Who may read and write what (SPEC.md §19): roles, each a list of grants of a permission on
/// a key prefix, and bindings of client keys to a unique name and a set of roles. Part of the
/// replicated state, changed only by admin-approved edits, enforced at execution for every
/// operation, so every replica (and the auditor) decides every request alike.
///
/// Whether a key with no binding may do anything is the configuration's `policy` mode
/// (`open`: everything, as before policies existed; `closed`: nothing).
public struct Policy: Hashable, Sendable {
    /// Changes applied so far; an approval signs the sequence it applies to, so it is worthless
    /// once any change has been applied.
    public var sequence: UInt64
    /// By strictly increasing name; a role exists while it has a grant.
    public var roles: [Role]
    /// By strictly increasing name; one binding per client key.
    public var bindings: [Binding]
    /// Edits collecting approvals, by increasing id.
    public var proposals: [PolicyProposal]

    public static let empty = Policy(sequence: 0, roles: [], bindings: [], proposals: [])

    public init(sequence: UInt64, roles: [Role], bindings: [Binding], proposals: [PolicyProposal]) {
        self.sequence = sequence
        self.roles = roles
        self.bindings = bindings
        self.proposals = proposals
    }

    public static let rolesMax = 64
    public static let grantsPerRoleMax = 32
    public static let bindingsMax = 1024
    public static let rolesPerBindingMax = 16
    public static let editsMax = 16
    public static let proposalsMax = 16
    public static let nameBytesMax = 64
    /// `{client}` may appear at most this many times in one prefix.
    public static let placeholdersMax = 4
    /// What `{client}` stands for in a grant's prefix: the caller's bound name.
    public static let placeholder = Array("{client}".utf8)

    /// Names of roles and clients: 1–64 bytes of letters, digits, `.`, `_` and `-`, so that a
    /// name never contains a `/` or a placeholder and a prefix's expansion is unambiguous.
    public static func isValidName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        return !bytes.isEmpty && bytes.count <= nameBytesMax && bytes.allSatisfy(isNameByte)
    }

    public static func isNameByte(_ b: UInt8) -> Bool {
        (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) || b == 0x2e || b == 0x5f || b == 0x2d
    }

    public func role(named name: String) -> Role? { roles.first { $0.name == name } }
    public func binding(named name: String) -> Binding? { bindings.first { $0.name == name } }
}

/// What a grant allows on keys under its prefix.
public enum Permission: UInt8, Hashable, Sendable, CaseIterable, Comparable, CustomStringConvertible {
    /// get, range, history, a transaction's guards, and verified reads.
    case read = 1
    /// put, delete, cas, and add of any delta.
    case write = 2
    /// add with a delta ≥ 0 only: anyone may pay in, only an owner (write) may take out.
    case credit = 3
    /// Submit configuration and policy approvals (the prefix must be empty).
    case admin = 4

    public var description: String {
        switch self {
        case .read: return "read"
        case .write: return "write"
        case .credit: return "credit"
        case .admin: return "admin"
        }
    }

    public init?(name: String) {
        guard let found = Self.allCases.first(where: { $0.description == name }) else { return nil }
        self = found
    }

    public static func < (a: Permission, b: Permission) -> Bool { a.rawValue < b.rawValue }
}

/// A permission on every key that starts with `prefix` (after `{client}` is replaced by the
/// caller's name).
public struct Grant: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var permission: Permission
    public var prefix: [UInt8]

    public init(permission: Permission, prefix: [UInt8]) {
        self.permission = permission
        self.prefix = prefix
    }

    public static func < (a: Grant, b: Grant) -> Bool {
        a.permission != b.permission ? a.permission < b.permission : a.prefix.lexicographicallyPrecedes(b.prefix)
    }

    public var description: String { "\(permission) on '\(String(decoding: prefix, as: UTF8.self))'" }

    /// `prefix` with every `{client}` replaced by `name`.
    public func expanded(for name: String) -> [UInt8] {
        let segments = Policy.segments(of: prefix)
        guard segments.count > 1 else { return prefix }
        let nameBytes = Array(name.utf8)
        var out = segments[0]
        for segment in segments.dropFirst() { out += nameBytes + segment }
        return out
    }

    /// Whether this grant names the caller (`{client}` appears in it).
    public var isPerClient: Bool { Policy.segments(of: prefix).count > 1 }
}

public struct Role: Hashable, Sendable {
    public var name: String
    /// Strictly increasing.
    public var grants: [Grant]

    public init(name: String, grants: [Grant]) {
        self.name = name
        self.grants = grants
    }
}

public struct Binding: Hashable, Sendable {
    public var name: String
    public var client: PublicKey
    /// Strictly increasing names; a role without grants grants nothing.
    public var roles: [String]

    /// `roles` as given: a binding whose roles are not in strictly increasing byte order is
    /// refused when applied (`Binding.sorted` builds one that is).
    public init(name: String, client: PublicKey, roles: [String]) {
        self.name = name
        self.client = client
        self.roles = roles
    }

    /// A binding with `roles` sorted and deduplicated.
    public static func sorted(name: String, client: PublicKey, roles: [String]) -> Binding {
        Binding(name: name, client: client, roles: Array(Set(roles)).sorted(by: Policy.precedes))
    }
}

/// One change to the policy.
public enum PolicyEdit: Hashable, Sendable, CustomStringConvertible {
    case grant(role: String, Grant)
    case revoke(role: String, Grant)
    case bind(Binding)
    case unbind(name: String)

    public var description: String {
        switch self {
        case let .grant(role, grant): return "grant \(role) \(grant)"
        case let .revoke(role, grant): return "revoke \(role) \(grant)"
        case let .bind(binding):
            return "bind \(binding.client.hex) as \(binding.name) with roles \(binding.roles.joined(separator: ", "))"
        case let .unbind(name): return "unbind \(name)"
        }
    }
}

public struct PolicyProposal: Hashable, Sendable {
    public var id: Digest
    public var edits: [PolicyEdit]
    /// By increasing admin index in the current configuration's `admins`.
    public var approvals: [ConfigApproval]

    public init(id: Digest, edits: [PolicyEdit], approvals: [ConfigApproval]) {
        self.id = id
        self.edits = edits
        self.approvals = approvals
    }
}

/// What `approvePolicy` carries: one admin's approval of `edits` as policy change number
/// `sequence` + 1, in epoch `epoch`.
public struct PolicyApprovalRequest: Hashable, Sendable {
    public var epoch: UInt64
    public var sequence: UInt64
    public var edits: [PolicyEdit]
    public var admin: PublicKey
    public var signature: Signature

    public init(epoch: UInt64, sequence: UInt64, edits: [PolicyEdit], admin: PublicKey, signature: Signature) {
        self.epoch = epoch
        self.sequence = sequence
        self.edits = edits
        self.admin = admin
        self.signature = signature
    }

    public init(cluster: ClusterID, epoch: UInt64, sequence: UInt64, edits: [PolicyEdit], adminKey: PrivateKey) {
        let message = Policy.approvalMessage(cluster: cluster, epoch: epoch, sequence: sequence, edits: edits)
        self.init(epoch: epoch, sequence: sequence, edits: edits, admin: adminKey.publicKey, signature: adminKey.sign(message))
    }

    public func proposalID(cluster: ClusterID) -> Digest {
        Digest.sha256(Policy.approvalMessage(cluster: cluster, epoch: epoch, sequence: sequence, edits: edits))
    }
}

/// Why a policy approval changed nothing (SPEC.md §19.3): a stable code, never a sentence.
public enum PolicyRefusal: Error, Hashable, Sendable, CustomStringConvertible {
    case wrongEpoch(current: UInt64)
    /// Another change was applied since the edits were signed.
    case wrongSequence(current: UInt64)
    case notAnAdmin
    case badSignature
    case tooManyProposals(max: UInt64)
    /// No edits, or more than `Policy.editsMax`.
    case badEditCount(count: UInt64)
    /// Edit `index` (from 0) cannot apply, for `reason`.
    case badEdit(index: UInt32, EditProblem)

    public enum EditProblem: UInt8, Hashable, Sendable, CustomStringConvertible {
        case invalidName = 1
        case alreadyGranted = 2
        case notGranted = 3
        case nameTaken = 4
        case clientAlreadyBound = 5
        case notBound = 6
        case policyFull = 7
        /// An admin grant with a prefix, a prefix over the key limit, with too many `{client}`,
        /// or with a `{client}` not followed by a delimiter.
        case invalidGrant = 8
        /// A binding with no roles or too many.
        case invalidRoles = 9

        public var description: String {
            switch self {
            case .invalidName: return "a name must be 1–64 letters, digits, '.', '_' or '-'"
            case .alreadyGranted: return "the role already has that grant"
            case .notGranted: return "the role has no such grant"
            case .nameTaken: return "the name is bound to another key"
            case .clientAlreadyBound: return "the key is already bound to a name"
            case .notBound: return "no client is bound to that name"
            case .policyFull: return "the policy holds as many roles, grants or bindings as it may"
            case .invalidGrant:
                return "an admin grant takes the empty prefix; a prefix fits keyBytesMax and has at most 4 {client}, each followed by a byte no name holds (such as '/')"
            case .invalidRoles: return "a binding names 1–16 roles"
            }
        }
    }

    public var description: String {
        switch self {
        case let .wrongEpoch(current): return "the approval is for another epoch; the current epoch is \(current)"
        case let .wrongSequence(current): return "the policy changed since the edits were signed; it is at change \(current)"
        case .notAnAdmin: return "the key is not an admin of the current configuration"
        case .badSignature: return "the approval's signature does not verify"
        case let .tooManyProposals(max): return "\(max) policy proposals are already open"
        case let .badEditCount(count): return "a policy change holds 1–\(Policy.editsMax) edits, not \(count)"
        case let .badEdit(index, problem): return "edit \(index): \(problem)"
        }
    }
}

/// A refused operation (SPEC.md §19.2): which part of it, on which key, needed which
/// permission; `prefix` is a prefix the policy grants that permission on and that covers the
/// key for some client name (the key itself when no grant covers it).
public struct PermissionDenial: Hashable, Sendable, CustomStringConvertible {
    public var operation: DeniedOperation
    public var key: [UInt8]
    public var permission: Permission
    public var prefix: [UInt8]

    public init(operation: DeniedOperation, key: [UInt8], permission: Permission, prefix: [UInt8]) {
        self.operation = operation
        self.key = key
        self.permission = permission
        self.prefix = prefix
    }

    public var description: String {
        let key = String(decoding: key, as: UTF8.self), prefix = String(decoding: prefix, as: UTF8.self)
        if permission == .admin { return "permission denied: \(operation) needs admin" }
        return "permission denied: \(operation) on \(key) needs \(permission) on \(prefix)"
    }
}

/// The kind of operation (or part of a transaction) a denial is about.
public enum DeniedOperation: UInt8, Hashable, Sendable, CustomStringConvertible {
    case put = 1, delete = 2, cas = 3, add = 4, get = 6, range = 7, history = 8, approveConfig = 9, governance = 10
    case approvePolicy = 11, policy = 12
    /// A transaction's guard (it reads its key).
    case guardRead = 13

    public var description: String {
        switch self {
        case .put: return "put"
        case .delete: return "delete"
        case .cas: return "cas"
        case .add: return "add"
        case .get: return "get"
        case .range: return "range"
        case .history: return "history"
        case .approveConfig: return "approve-config"
        case .governance: return "governance"
        case .approvePolicy: return "approve-policy"
        case .policy: return "policy"
        case .guardRead: return "txn guard"
        }
    }
}

// MARK: - Evaluation

extension Policy {
    /// The literal pieces of a prefix between its `{client}` placeholders.
    public static func segments(of prefix: [UInt8]) -> [[UInt8]] {
        var segments: [[UInt8]] = []
        var current: [UInt8] = []
        var i = 0
        while i < prefix.count {
            if prefix.count - i >= placeholder.count, prefix[i..<(i + placeholder.count)].elementsEqual(placeholder) {
                segments.append(current)
                current = []
                i += placeholder.count
            } else {
                current.append(prefix[i])
                i += 1
            }
        }
        segments.append(current)
        return segments
    }

    /// The expansion of `prefix` (with `{client}` standing for any valid name) that `key`
    /// starts with, if any: the first found trying the shortest names first.
    static func coveringExpansion(of prefix: [UInt8], for key: [UInt8]) -> [UInt8]? {
        let segments = segments(of: prefix)
        func match(_ index: Int, at position: Int, _ built: [UInt8]) -> [UInt8]? {
            let segment = segments[index]
            guard key.count - position >= segment.count,
                  key[position..<(position + segment.count)].elementsEqual(segment) else { return nil }
            let after = position + segment.count
            let soFar = built + segment
            if index == segments.count - 1 { return soFar }
            // A name: 1–64 name bytes of the key.
            var end = after
            while end < key.count, end - after < nameBytesMax, isNameByte(key[end]) {
                end += 1
                if let found = match(index + 1, at: end, soFar + key[after..<end]) { return found }
            }
            return nil
        }
        return match(0, at: 0, [])
    }

    /// The caller's rights: its name and its roles' grants, expanded for its name.
    public struct Caller: Sendable {
        public var name: String?
        /// Every right, as when no policy restricts the key (an open cluster's unbound keys).
        public var unrestricted: Bool
        /// A current admin key (it may submit approvals even unbound).
        public var isAdmin: Bool
        /// Expanded grants, sorted.
        public var grants: [Grant]

        /// Whether the caller may use `permission` on `key`.
        public func may(_ permission: Permission, _ key: [UInt8]) -> Bool {
            if unrestricted { return true }
            return grants.contains { grant in
                (grant.permission == permission || (permission == .credit && grant.permission == .write))
                    && key.starts(with: grant.prefix)
            }
        }

        /// Whether the caller may read every key in `[start, end)` (an empty `end`: no upper
        /// bound): one read grant's prefix P must cover them all, i.e. the range is empty, or
        /// P ≤ start and end ≤ the first string after every string starting with P.
        public func mayRead(from start: [UInt8], to end: [UInt8]) -> Bool {
            if unrestricted { return true }
            let empty = !end.isEmpty && !start.lexicographicallyPrecedes(end)
            return grants.contains { grant in
                guard grant.permission == .read else { return false }
                if empty { return true }
                guard !start.lexicographicallyPrecedes(grant.prefix) else { return false }
                guard let after = Policy.successor(of: grant.prefix) else { return true }
                return !end.isEmpty && !after.lexicographicallyPrecedes(end)
            }
        }

        /// May submit configuration or policy approvals.
        public var mayAdminister: Bool { unrestricted || isAdmin || grants.contains { $0.permission == .admin } }
        /// May read the governance and the policy: any caller the cluster serves.
        public var isKnown: Bool { unrestricted || isAdmin || name != nil }
    }

    /// The smallest byte string greater than every string that starts with `prefix`; nil when
    /// there is none (the empty prefix, or one of only 0xff bytes).
    static func successor(of prefix: [UInt8]) -> [UInt8]? {
        var bytes = prefix
        while let last = bytes.last, last == 0xff { bytes.removeLast() }
        guard !bytes.isEmpty else { return nil }
        bytes[bytes.count - 1] += 1
        return bytes
    }

    /// The rights of every bound client, by key: built once per policy change, so a request
    /// costs one lookup and a scan of its own grants.
    public func index(admins: [PublicKey], mode: ClientPolicy) -> PolicyIndex {
        var byClient: [PublicKey: Caller] = [:]
        for binding in bindings {
            var grants: [Grant] = []
            for roleName in binding.roles {
                guard let role = role(named: roleName) else { continue }
                grants += role.grants.map { Grant(permission: $0.permission, prefix: $0.expanded(for: binding.name)) }
            }
            byClient[binding.client] = Caller(name: binding.name, unrestricted: false,
                                              isAdmin: admins.contains(binding.client), grants: grants.sorted())
        }
        return PolicyIndex(byClient: byClient, admins: Set(admins), mode: mode)
    }

    /// The prefix a denial names: the first grant of any role (in canonical order) with
    /// `permission` whose prefix, for some client name, covers `key`; else `key` itself.
    public func suggestedPrefix(_ permission: Permission, for key: [UInt8]) -> [UInt8] {
        for role in roles {
            for grant in role.grants where grant.permission == permission || (permission == .credit && grant.permission == .write) {
                if let covering = Self.coveringExpansion(of: grant.prefix, for: key) { return covering }
            }
        }
        return key
    }
}

/// Open or closed: what a client key with no binding may do.
public enum ClientPolicy: UInt8, Hashable, Sendable, CustomStringConvertible {
    /// Everything (a cluster without a policy).
    case open = 0
    /// Nothing: replicas refuse its requests before ordering.
    case closed = 1

    public var description: String { self == .open ? "open" : "closed" }
}

/// `Policy.index`: who is bound, and as what. Derived from the policy and the configuration.
public struct PolicyIndex: Sendable {
    var byClient: [PublicKey: Policy.Caller]
    var admins: Set<PublicKey>
    var mode: ClientPolicy

    public func caller(_ client: PublicKey) -> Policy.Caller {
        if let bound = byClient[client] { return bound }
        return Policy.Caller(name: nil, unrestricted: mode == .open, isAdmin: admins.contains(client), grants: [])
    }

    /// Whether a replica orders `client`'s requests at all: not in a closed cluster when the
    /// key is neither bound nor an admin's.
    public func admits(_ client: PublicKey) -> Bool { caller(client).isKnown }
}

// MARK: - Changes

extension Policy {
    /// Names order by their bytes.
    public static func precedes(_ a: String, _ b: String) -> Bool { Array(a.utf8).lexicographicallyPrecedes(Array(b.utf8)) }

    /// The bytes an admin signs to approve `edits` as change `sequence + 1` in `epoch`.
    public static func approvalMessage(cluster: ClusterID, epoch: UInt64, sequence: UInt64, edits: [PolicyEdit]) -> [UInt8] {
        Domain.policyApproval.message(cluster: cluster) { w in
            w.write(epoch)
            w.write(sequence)
            w.write(edits)
        }
    }
}

// MARK: - Encoding

extension Grant: CanonicalCodable {
    public func encode(to w: inout CanonicalWriter) {
        w.write(permission.rawValue)
        w.writeBytes(prefix)
    }

    public init(from r: inout CanonicalReader) throws(CodecError) {
        let code = try r.readUInt8("permission")
        guard let permission = Permission(rawValue: code) else { throw .unknownTag(type: "permission", tag: code) }
        self.init(permission: permission, prefix: try r.readKey())
    }
}

extension CanonicalReader {
    mutating func readName(_ field: String) throws(CodecError) -> String {
        let name = try readString(field, max: Policy.nameBytesMax)
        guard Policy.isValidName(name) else { throw .invalidValue(field: field, reason: "not a valid name") }
        return name
    }

    /// Names in strictly increasing byte order.
    mutating func readNames(_ field: String, max: Int) throws(CodecError) -> [String] {
        let count = Int(try readUInt32(field))
        guard count <= max else { throw .tooLarge(field: field, length: count, max: max) }
        var names: [String] = []
        for _ in 0..<count {
            let name = try readName(field)
            if let last = names.last, !Policy.precedes(last, name) {
                throw .invalidValue(field: field, reason: "names not strictly increasing")
            }
            names.append(name)
        }
        return names
    }
}

extension Role: CanonicalCodable {
    public func encode(to w: inout CanonicalWriter) {
        w.write(name)
        w.write(grants)
    }

    public init(from r: inout CanonicalReader) throws(CodecError) {
        name = try r.readName("role name")
        grants = try r.readArray(Grant.self, "grants", max: Policy.grantsPerRoleMax)
        guard !grants.isEmpty, zip(grants, grants.dropFirst()).allSatisfy({ $0 < $1 }) else {
            throw .invalidValue(field: "grants", reason: "empty, or not strictly increasing")
        }
    }
}

extension Binding: CanonicalCodable {
    public func encode(to w: inout CanonicalWriter) {
        w.write(name)
        w.write(client)
        w.write(UInt32(roles.count))
        for role in roles { w.write(role) }
    }

    public init(from r: inout CanonicalReader) throws(CodecError) {
        let name = try r.readName("binding name")
        let client = try r.readPublicKey("binding client")
        let roles = try r.readNames("binding roles", max: Policy.rolesPerBindingMax)
        self.init(name: name, client: client, roles: roles)
    }
}

extension PolicyEdit: CanonicalCodable {
    public func encode(to w: inout CanonicalWriter) {
        switch self {
        case let .grant(role, grant): w.write(UInt8(1)); w.write(role); w.write(grant)
        case let .revoke(role, grant): w.write(UInt8(2)); w.write(role); w.write(grant)
        case let .bind(binding): w.write(UInt8(3)); w.write(binding)
        case let .unbind(name): w.write(UInt8(4)); w.write(name)
        }
    }

    /// Names are only bounded here; whether an edit applies is the ledger's decision, recorded
    /// as a refusal (so a bad name is a result, not an undecodable request).
    public init(from r: inout CanonicalReader) throws(CodecError) {
        let tag = try r.readUInt8("policy edit")
        switch tag {
        case 1: self = .grant(role: try r.readString("role", max: Policy.nameBytesMax), try r.read(Grant.self))
        case 2: self = .revoke(role: try r.readString("role", max: Policy.nameBytesMax), try r.read(Grant.self))
        case 3:
            let name = try r.readString("binding name", max: Policy.nameBytesMax)
            let client = try r.readPublicKey("binding client")
            let count = Int(try r.readUInt32("binding roles"))
            guard count <= Policy.rolesPerBindingMax else {
                throw .tooLarge(field: "binding roles", length: count, max: Policy.rolesPerBindingMax)
            }
            var roles: [String] = []
            for _ in 0..<count { roles.append(try r.readString("role", max: Policy.nameBytesMax)) }
            self = .bind(Binding(name: name, client: client, roles: roles))
        case 4: self = .unbind(name: try r.readString("binding name", max: Policy.nameBytesMax))
        default: throw .unknownTag(type: "policy edit", tag: tag)
        }
    }
}

extension PolicyProposal: CanonicalCodable {
    public func encode(to w: inout CanonicalWriter) {
        w.write(id)
        w.write(edits)
        w.write(approvals)
    }

    public init(from r: inout CanonicalReader) throws(CodecError) {
        id = try r.readDigest("policy proposal id")
        edits = try r.readArray(PolicyEdit.self, "policy edits", max: Policy.editsMax)
        approvals = try r.readArray(ConfigApproval.self, "approvals", max: ClusterConfig.adminsMax)
    }
}

extension Policy: CanonicalCodable {
    static let formatVersion: UInt8 = 1

    public func encode(to w: inout CanonicalWriter) {
        w.write(Self.formatVersion)
        w.write(sequence)
        w.write(roles)
        w.write(bindings)
        w.write(proposals)
    }

    public init(from r: inout CanonicalReader) throws(CodecError) {
        try r.readVersion("policy", supported: Self.formatVersion)
        sequence = try r.readUInt64("policy sequence")
        roles = try r.readArray(Role.self, "roles", max: Self.rolesMax)
        bindings = try r.readArray(Binding.self, "bindings", max: Self.bindingsMax)
        proposals = try r.readArray(PolicyProposal.self, "policy proposals", max: Self.proposalsMax)
        guard zip(roles, roles.dropFirst()).allSatisfy({ Self.precedes($0.name, $1.name) }),
              zip(bindings, bindings.dropFirst()).allSatisfy({ Self.precedes($0.name, $1.name) }),
              Set(bindings.map(\.client)).count == bindings.count,
              zip(proposals, proposals.dropFirst()).allSatisfy({ $0.id < $1.id }) else {
            throw .invalidValue(field: "policy", reason: "roles, bindings or proposals out of order, or a key bound twice")
        }
    }
}

extension PolicyApprovalRequest: CanonicalCodable {
    public func encode(to w: inout CanonicalWriter) {
        w.write(epoch)
        w.write(sequence)
        w.write(edits)
        w.write(admin)
        w.write(signature)
    }

    public init(from r: inout CanonicalReader) throws(CodecError) {
        epoch = try r.readUInt64("approval epoch")
        sequence = try r.readUInt64("approval sequence")
        edits = try r.readArray(PolicyEdit.self, "policy edits", max: Policy.editsMax)
        admin = try r.readPublicKey("approval admin")
        signature = try r.readSignature("approval signature")
    }
}

extension PolicyRefusal: CanonicalCodable {
    public func encode(to w: inout CanonicalWriter) {
        switch self {
        case let .wrongEpoch(current): w.write(UInt8(1)); w.write(current)
        case let .wrongSequence(current): w.write(UInt8(2)); w.write(current)
        case .notAnAdmin: w.write(UInt8(3))
        case .badSignature: w.write(UInt8(4))
        case let .tooManyProposals(max): w.write(UInt8(5)); w.write(max)
        case let .badEditCount(count): w.write(UInt8(6)); w.write(count)
        case let .badEdit(index, problem): w.write(UInt8(7)); w.write(index); w.write(problem.rawValue)
        }
    }

    public init(from r: inout CanonicalReader) throws(CodecError) {
        let tag = try r.readUInt8("policy refusal")
        switch tag {
        case 1: self = .wrongEpoch(current: try r.readUInt64("current epoch"))
        case 2: self = .wrongSequence(current: try r.readUInt64("current sequence"))
        case 3: self = .notAnAdmin
        case 4: self = .badSignature
        case 5: self = .tooManyProposals(max: try r.readUInt64("proposals max"))
        case 6: self = .badEditCount(count: try r.readUInt64("edit count"))
        case 7:
            let index = try r.readUInt32("edit index")
            let code = try r.readUInt8("edit problem")
            guard let problem = EditProblem(rawValue: code) else { throw .unknownTag(type: "edit problem", tag: code) }
            self = .badEdit(index: index, problem)
        default: throw .unknownTag(type: "policy refusal", tag: tag)
        }
    }
}

extension PermissionDenial: CanonicalCodable {
    public func encode(to w: inout CanonicalWriter) {
        w.write(operation.rawValue)
        w.writeBytes(key)
        w.write(permission.rawValue)
        w.writeBytes(prefix)
    }

    public init(from r: inout CanonicalReader) throws(CodecError) {
        let op = try r.readUInt8("denied operation")
        guard let operation = DeniedOperation(rawValue: op) else { throw .unknownTag(type: "denied operation", tag: op) }
        let key = try r.readKey()
        let code = try r.readUInt8("permission")
        guard let permission = Permission(rawValue: code) else { throw .unknownTag(type: "permission", tag: code) }
        self.init(operation: operation, key: key, permission: permission, prefix: try r.readKey())
    }
}
