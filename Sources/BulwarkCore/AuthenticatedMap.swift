/// An authenticated map from 32-byte key hashes to 32-byte value hashes: a compressed sparse
/// Merkle tree (a binary trie over the bits of the key hash, where a subtree holding a single
/// leaf is that leaf). Its shape depends only on the set of keys, so equal contents give equal
/// roots on every replica. Updates and proofs cost O(log n) hashes.
///
/// Hashes: empty subtree = 32 zero bytes; leaf = SHA-256(0x00 || keyHash || valueHash);
/// branch = SHA-256(0x01 || left || right).
public struct AuthenticatedMap: Sendable {
    indirect enum Node: Sendable {
        case empty
        case leaf(key: Digest, value: Digest, hash: Digest)
        case branch(left: Node, right: Node, hash: Digest)

        var hash: Digest {
            switch self {
            case .empty: return .zero
            case let .leaf(_, _, hash), let .branch(_, _, hash): return hash
            }
        }
    }

    var root: Node = .empty
    public private(set) var count = 0

    public init() {}

    public var rootHash: Digest { root.hash }

    static func leaf(_ key: Digest, _ value: Digest) -> Node {
        .leaf(key: key, value: value, hash: leafHash(key, value))
    }

    static func leafHash(_ key: Digest, _ value: Digest) -> Digest {
        withUnsafeTemporaryAllocation(byteCount: 65, alignment: 8) { buffer in
            buffer[0] = 0
            key.withUnsafeBytes { UnsafeMutableRawBufferPointer(rebasing: buffer[1..<33]).copyMemory(from: $0) }
            value.withUnsafeBytes { UnsafeMutableRawBufferPointer(rebasing: buffer[33..<65]).copyMemory(from: $0) }
            return Digest.sha256(UnsafeRawBufferPointer(buffer))
        }
    }

    static func branch(_ left: Node, _ right: Node) -> Node {
        .branch(left: left, right: right, hash: MerkleTree.nodeHash(left.hash, right.hash))
    }

    /// Bit `index` of the key hash, most significant bit of the first byte first.
    static func bit(_ key: Digest, _ index: Int) -> Bool {
        key.withUnsafeBytes { ($0[index >> 3] >> (7 - UInt8(index & 7))) & 1 == 1 }
    }

    public func value(for key: Digest) -> Digest? {
        var node = root
        var depth = 0
        while true {
            switch node {
            case .empty: return nil
            case let .leaf(k, v, _): return k == key ? v : nil
            case let .branch(left, right, _):
                node = Self.bit(key, depth) ? right : left
                depth += 1
            }
        }
    }

    public mutating func set(_ key: Digest, value: Digest) {
        var added = false
        root = Self.insert(root, key, value, depth: 0, added: &added)
        if added { count += 1 }
    }

    public mutating func remove(_ key: Digest) {
        var removed = false
        root = Self.remove(root, key, depth: 0, removed: &removed)
        if removed { count -= 1 }
    }

    static func insert(_ node: Node, _ key: Digest, _ value: Digest, depth: Int, added: inout Bool) -> Node {
        switch node {
        case .empty:
            added = true
            return leaf(key, value)
        case let .leaf(existing, _, _):
            if existing == key { return leaf(key, value) }
            added = true
            return split(existing: node, existingKey: existing, new: leaf(key, value), newKey: key, depth: depth)
        case let .branch(left, right, _):
            return bit(key, depth)
                ? branch(left, insert(right, key, value, depth: depth + 1, added: &added))
                : branch(insert(left, key, value, depth: depth + 1, added: &added), right)
        }
    }

    /// Two leaves that share the path down to `depth`: branch until their bits differ.
    static func split(existing: Node, existingKey: Digest, new: Node, newKey: Digest, depth: Int) -> Node {
        precondition(depth < 256, "two different key hashes cannot share all 256 bits")
        let newBit = bit(newKey, depth)
        if newBit == bit(existingKey, depth) {
            let child = split(existing: existing, existingKey: existingKey, new: new, newKey: newKey, depth: depth + 1)
            return newBit ? branch(.empty, child) : branch(child, .empty)
        }
        return newBit ? branch(existing, new) : branch(new, existing)
    }

    static func remove(_ node: Node, _ key: Digest, depth: Int, removed: inout Bool) -> Node {
        switch node {
        case .empty: return .empty
        case let .leaf(existing, _, _):
            guard existing == key else { return node }
            removed = true
            return .empty
        case let .branch(left, right, _):
            let (l, r) = bit(key, depth)
                ? (left, remove(right, key, depth: depth + 1, removed: &removed))
                : (remove(left, key, depth: depth + 1, removed: &removed), right)
            guard removed else { return node }
            return joined(l, r)
        }
    }

    /// One change in a batch: the key's new value hash, or nil to remove the key.
    public struct Change: Sendable {
        public var key: Digest
        public var value: Digest?

        public init(key: Digest, value: Digest?) {
            self.key = key
            self.value = value
        }
    }

    /// Applies many changes in one pass: every node on the changed paths is rebuilt and hashed
    /// once, however many of the changes pass through it, where `set` and `remove` rebuild the
    /// whole path for each key. `changes` must be sorted by key with no key twice. The result
    /// is the same tree as applying them one by one, in any order.
    public mutating func apply(sorted changes: [Change]) {
        guard !changes.isEmpty else { return }
        precondition(zip(changes, changes.dropFirst()).allSatisfy { $0.key < $1.key },
                     "changes must be sorted by key, each key once")
        var delta = 0
        root = Self.apply(root, changes[...], depth: 0, delta: &delta)
        count += delta
    }

    static func apply(_ node: Node, _ changes: ArraySlice<Change>, depth: Int, delta: inout Int) -> Node {
        guard !changes.isEmpty else { return node }
        switch node {
        case .empty:
            let leaves = changes.filter { $0.value != nil }
            delta += leaves.count
            return build(leaves[...], depth: depth)
        case let .leaf(existing, value, _):
            // The existing leaf joins the changes unless one of them replaces or removes it.
            var merged = Array(changes)
            let index = merged.firstIndex { !($0.key < existing) } ?? merged.endIndex
            if index == merged.endIndex || merged[index].key != existing {
                merged.insert(Change(key: existing, value: value), at: index)
            }
            let leaves = merged.filter { $0.value != nil }
            delta += leaves.count - 1
            return build(leaves[...], depth: depth)
        case let .branch(left, right, _):
            // Sorted keys with bit `depth` clear come before those with it set.
            let split = changes.firstIndex { bit($0.key, depth) } ?? changes.endIndex
            let l = apply(left, changes[..<split], depth: depth + 1, delta: &delta)
            let r = apply(right, changes[split...], depth: depth + 1, delta: &delta)
            return joined(l, r)
        }
    }

    /// Two subtrees that lost leaves, joined in the canonical shape: a branch never holds a
    /// lone leaf or nothing, so such a leaf moves up (its hash does not depend on its depth).
    static func joined(_ l: Node, _ r: Node) -> Node {
        switch (l, r) {
        case (.empty, .empty): return .empty
        case (.empty, .leaf), (.leaf, .empty): return l.isEmpty ? r : l
        default: return branch(l, r)
        }
    }

    /// The canonical subtree at `depth` holding exactly `leaves` (sorted, each with a value).
    static func build(_ leaves: ArraySlice<Change>, depth: Int) -> Node {
        switch leaves.count {
        case 0: return .empty
        case 1: return leaf(leaves.first!.key, leaves.first!.value!)
        default:
            precondition(depth < 256, "two different key hashes cannot share all 256 bits")
            let split = leaves.firstIndex { bit($0.key, depth) } ?? leaves.endIndex
            return branch(build(leaves[..<split], depth: depth + 1), build(leaves[split...], depth: depth + 1))
        }
    }

    /// A proof that `key` maps to a value hash, or that it is absent.
    public func proof(for key: Digest) -> Proof {
        var siblings: [Digest] = []
        var node = root
        var depth = 0
        while true {
            switch node {
            case .empty: return Proof(siblings: siblings, terminal: .empty)
            case let .leaf(k, v, _): return Proof(siblings: siblings, terminal: .leaf(key: k, value: v))
            case let .branch(left, right, _):
                let goRight = Self.bit(key, depth)
                siblings.append(goRight ? left.hash : right.hash)
                node = goRight ? right : left
                depth += 1
            }
        }
    }

    /// Siblings from the root down to where the key's path ends, and what it ends in.
    public struct Proof: Hashable, Sendable {
        public enum Terminal: Hashable, Sendable {
            case empty
            case leaf(key: Digest, value: Digest)
        }

        public var siblings: [Digest]
        public var terminal: Terminal

        public init(siblings: [Digest], terminal: Terminal) {
            self.siblings = siblings
            self.terminal = terminal
        }

        public enum Failure: Error, Equatable, Sendable {
            case tooDeep
            case leafOffPath
            case rootMismatch
        }

        /// Checks the proof against `root` and returns the value hash of `key` (nil: absent).
        public func verify(key: Digest, root: Digest) throws(Failure) -> Digest? {
            guard siblings.count <= 256 else { throw .tooDeep }
            var current: Digest
            var result: Digest?
            switch terminal {
            case .empty:
                current = .zero
            case let .leaf(leafKey, value):
                // A different leaf proves absence only if it sits on the key's own path.
                for depth in 0..<siblings.count where AuthenticatedMap.bit(leafKey, depth) != AuthenticatedMap.bit(key, depth) {
                    throw .leafOffPath
                }
                current = AuthenticatedMap.leafHash(leafKey, value)
                result = leafKey == key ? value : nil
            }
            for depth in stride(from: siblings.count - 1, through: 0, by: -1) {
                current = AuthenticatedMap.bit(key, depth)
                    ? MerkleTree.nodeHash(siblings[depth], current)
                    : MerkleTree.nodeHash(current, siblings[depth])
            }
            guard current == root else { throw .rootMismatch }
            return result
        }
    }
}

extension AuthenticatedMap.Node {
    var isEmpty: Bool { if case .empty = self { return true } else { return false } }
}

extension AuthenticatedMap.Proof: CanonicalCodable {
    public func encode(to w: inout CanonicalWriter) {
        w.write(UInt16(siblings.count))
        for s in siblings { w.write(s) }
        switch terminal {
        case .empty: w.write(UInt8(0))
        case let .leaf(key, value): w.write(UInt8(1)); w.write(key); w.write(value)
        }
    }

    public init(from r: inout CanonicalReader) throws(CodecError) {
        let count = Int(try r.readUInt16("proof depth"))
        guard count <= 256 else { throw .tooLarge(field: "proof depth", length: count, max: 256) }
        var siblings: [Digest] = []
        for _ in 0..<count { siblings.append(try r.readDigest("sibling")) }
        let tag = try r.readUInt8("terminal")
        switch tag {
        case 0: self.init(siblings: siblings, terminal: .empty)
        case 1: self.init(siblings: siblings, terminal: .leaf(key: try r.readDigest("leaf key"), value: try r.readDigest("leaf value")))
        default: throw .unknownTag(type: "proof terminal", tag: tag)
        }
    }
}
