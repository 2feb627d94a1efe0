import BulwarkCore

/// The plain model of client permissions (SPEC.md §19) that the ledger is checked against, in
/// tests and by the simulator's checker: dictionaries of what was granted and bound, prefixes
/// expanded by replacing bytes, ranges checked against every key of a given universe. It
/// shares no evaluation code with `Policy`.
public struct PolicyModel {
    public var mode: ClientPolicy
    public var admins: Set<PublicKey>
    public var roles: [String: [Grant]] = [:]
    public var bindings: [PublicKey: (name: String, roles: [String])] = [:]

    public init(mode: ClientPolicy, admins: Set<PublicKey>) {
        self.mode = mode
        self.admins = admins
    }

    /// Whether the edit applies, applying it if so.
    public mutating func apply(_ edit: PolicyEdit) -> Bool {
        switch edit {
        case let .grant(role, grant):
            if !Self.delimited(grant.prefix) || roles[role, default: []].contains(grant) { return false }
            roles[role, default: []].append(grant)
        case let .revoke(role, grant):
            guard let index = roles[role]?.firstIndex(of: grant) else { return false }
            roles[role]!.remove(at: index)
            if roles[role]!.isEmpty { roles[role] = nil }
        case let .bind(binding):
            if bindings[binding.client] != nil || bindings.values.contains(where: { $0.name == binding.name }) { return false }
            bindings[binding.client] = (binding.name, binding.roles)
        case let .unbind(name):
            guard let client = bindings.first(where: { $0.value.name == name })?.key else { return false }
            bindings[client] = nil
        }
        return true
    }

    /// The caller's expanded grants, or nil when it may do everything.
    public func grants(of client: PublicKey) -> [(Permission, [UInt8])]? {
        guard let (name, roleNames) = bindings[client] else { return mode == .open ? nil : [] }
        return roleNames.flatMap { roles[$0] ?? [] }.map { grant in (grant.permission, Self.replace(grant.prefix, name)) }
    }

    /// Every `{client}` in `pattern` replaced by `name`, byte by byte.
    public static func replace(_ pattern: [UInt8], _ name: String) -> [UInt8] {
        let placeholder = Array("{client}".utf8)
        var out: [UInt8] = []
        var i = 0
        while i < pattern.count {
            if Array(pattern[i...].prefix(placeholder.count)) == placeholder {
                out += Array(name.utf8)
                i += placeholder.count
            } else {
                out.append(pattern[i])
                i += 1
            }
        }
        return out
    }

    /// Whether every `{client}` in `pattern` is followed by a byte outside `A–Z a–z 0–9 . _ -`
    /// that does not begin another `{client}`.
    public static func delimited(_ pattern: [UInt8]) -> Bool {
        let placeholder = Array("{client}".utf8)
        let nameBytes = Set(Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-".utf8))
        var i = 0
        while i < pattern.count {
            if Array(pattern[i...].prefix(placeholder.count)) == placeholder {
                let next = i + placeholder.count
                guard next < pattern.count, !nameBytes.contains(pattern[next]),
                      Array(pattern[next...].prefix(placeholder.count)) != placeholder else { return false }
                i = next
            } else {
                i += 1
            }
        }
        return true
    }

    public func known(_ client: PublicKey) -> Bool { bindings[client] != nil || mode == .open || admins.contains(client) }

    public func may(_ client: PublicKey, _ permission: Permission, _ key: [UInt8]) -> Bool {
        guard let grants = grants(of: client) else { return true }
        return grants.contains { granted, prefix in
            (granted == permission || (permission == .credit && granted == .write)) && key.starts(with: prefix)
        }
    }

    /// Every key of `universe` in `[start, end)` starts with one read grant's prefix.
    public func mayRange(_ client: PublicKey, _ start: [UInt8], _ end: [UInt8], universe: [[UInt8]]) -> Bool {
        guard let grants = grants(of: client) else { return true }
        let inRange = universe.filter { k in
            !k.lexicographicallyPrecedes(start) && (end.isEmpty || k.lexicographicallyPrecedes(end))
        }
        return grants.contains { permission, prefix in
            permission == .read && inRange.allSatisfy { $0.starts(with: prefix) }
        }
    }

    /// The first denied part of `operation`: its key and the permission it needed.
    public func firstDenied(_ operation: LedgerOperation, by client: PublicKey) -> (key: [UInt8], permission: Permission)? {
        func check(_ permission: Permission, _ key: [UInt8]) -> (key: [UInt8], permission: Permission)? {
            may(client, permission, key) ? nil : (key, permission)
        }
        /// Paying in is a positive delta; bounds other than the whole range read the balance.
        func adding(_ k: [UInt8], _ delta: Int64, _ min: Int64, _ max: Int64) -> (key: [UInt8], permission: Permission)? {
            if let denied = check(delta > 0 ? .credit : .write, k) { return denied }
            return min == Int64.min && max == Int64.max ? nil : check(.read, k)
        }
        switch operation {
        case let .put(k, _), let .delete(k): return check(.write, k)
        case let .cas(k, _, _): return check(.write, k) ?? check(.read, k)
        case let .add(k, delta, min, max): return adding(k, delta, min, max)
        case let .get(k), let .history(k, _): return check(.read, k)
        case let .txn(guards, writes):
            for g in guards { if let denied = check(.read, g.key) { return denied } }
            for w in writes {
                switch w {
                case let .put(k, _), let .delete(k): if let denied = check(.write, k) { return denied }
                case let .add(k, delta, min, max): if let denied = adding(k, delta, min, max) { return denied }
                }
            }
            return nil
        case .governance, .policy: return known(client) ? nil : ([], .read)
        case .range, .approveConfig, .approvePolicy: preconditionFailure("ranges and approvals are checked elsewhere")
        }
    }
}
