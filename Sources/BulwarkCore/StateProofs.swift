/// Proofs about a state that anyone checks offline (SPEC.md §9.5, §18.5): formats, in Core; the
/// state machine builds them.

/// The replicated configuration after `height`, with its path in the authenticated map.
public struct GovernanceProof: Hashable, Sendable {
    public var governance: Governance
    public var height: Height
    public var mapRoot: Digest
    public var proof: AuthenticatedMap.Proof

    public init(governance: Governance, height: Height, mapRoot: Digest, proof: AuthenticatedMap.Proof) {
        self.governance = governance
        self.height = height
        self.mapRoot = mapRoot
        self.proof = proof
    }

    /// Throws unless `governance` is exactly what the state with root `stateRoot` holds.
    public func verify(stateRoot: Digest, cluster: ClusterID) throws(KeyProof.Failure) {
        guard governance.config.clusterID == cluster,
              StateHashing.stateRoot(cluster: cluster, height: height, mapRoot: mapRoot) == stateRoot else {
            throw .stateRootMismatch
        }
        let proven: Digest?
        do { proven = try proof.verify(key: StateHashing.governanceKeyHash, root: mapRoot) } catch {
            throw .invalidPath(error)
        }
        guard proven == StateHashing.governanceValueHash(governance) else { throw .valueMismatch }
    }
}

extension GovernanceProof: CanonicalCodable {
    public func encode(to w: inout CanonicalWriter) {
        w.write(governance)
        w.write(height)
        w.write(mapRoot)
        w.write(proof)
    }

    public init(from r: inout CanonicalReader) throws(CodecError) {
        governance = try r.read(Governance.self)
        height = try r.readUInt64("height")
        mapRoot = try r.readDigest("map root")
        proof = try r.read(AuthenticatedMap.Proof.self)
    }
}

/// A key's value and version (or its absence) in the state after `height`, with the proof.
public struct KeyProof: Hashable, Sendable {
    public var key: [UInt8]
    public var value: [UInt8]?
    public var version: UInt64
    public var height: Height
    public var mapRoot: Digest
    public var proof: AuthenticatedMap.Proof

    public init(key: [UInt8], value: [UInt8]?, version: UInt64, height: Height, mapRoot: Digest, proof: AuthenticatedMap.Proof) {
        self.key = key
        self.value = value
        self.version = version
        self.height = height
        self.mapRoot = mapRoot
        self.proof = proof
    }

    public enum Failure: Error, Equatable, Sendable, CustomStringConvertible {
        case stateRootMismatch
        case invalidPath(AuthenticatedMap.Proof.Failure)
        case valueMismatch

        public var description: String {
            switch self {
            case .stateRootMismatch: return "the proof is for another state root"
            case let .invalidPath(reason): return "the proof's path does not verify (\(reason))"
            case .valueMismatch: return "the value or version does not match the proof"
            }
        }
    }

    /// Throws unless this proof shows exactly `value` and `version` (or absence) for `key`
    /// under `stateRoot`, the state root of `cluster`.
    public func verify(stateRoot: Digest, cluster: ClusterID) throws(Failure) {
        guard StateHashing.stateRoot(cluster: cluster, height: height, mapRoot: mapRoot) == stateRoot else {
            throw .stateRootMismatch
        }
        let proven: Digest?
        do { proven = try proof.verify(key: StateHashing.recordKeyHash(key), root: mapRoot) } catch {
            throw .invalidPath(error)
        }
        let claimed = value.map { StateHashing.recordValueHash(value: $0, version: version) }
        guard proven == claimed, value != nil || version == 0 else { throw .valueMismatch }
    }
}

extension KeyProof: CanonicalCodable {
    static let formatVersion: UInt8 = 1

    public func encode(to w: inout CanonicalWriter) {
        w.write(Self.formatVersion)
        w.writeBytes(key)
        w.write(value != nil)
        if let value { w.writeBytes(value) }
        w.write(version)
        w.write(height)
        w.write(mapRoot)
        w.write(proof)
    }

    public init(from r: inout CanonicalReader) throws(CodecError) {
        try r.readVersion("key proof", supported: Self.formatVersion)
        key = try r.readKey()
        value = try r.readBool("value present") ? try r.readValue() : nil
        version = try r.readUInt64("version")
        height = try r.readUInt64("height")
        mapRoot = try r.readDigest("map root")
        proof = try r.read(AuthenticatedMap.Proof.self)
    }
}
