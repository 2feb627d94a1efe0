/// Domain separation. Every signature and every protocol hash covers
/// `len(tag) || tag || clusterID || bytes`, with one tag per kind of object, so a signature
/// over one kind of message (or in one cluster) is worthless as any other.
public struct Domain: Hashable, Sendable {
    public let tag: String
    /// The encoded prefix: one length byte, then the tag's UTF-8 bytes.
    let prefix: [UInt8]

    public init(_ tag: String) {
        let utf8 = Array(tag.utf8)
        precondition(!utf8.isEmpty && utf8.count < 256, "domain tag must be 1...255 bytes")
        self.tag = tag
        self.prefix = [UInt8(utf8.count)] + utf8
    }

    public static let request = Domain("bulwark/v1/request")
    public static let requestDigest = Domain("bulwark/v1/request-digest")
    public static let block = Domain("bulwark/v1/block")
    public static let prePrepare = Domain("bulwark/v1/pre-prepare")
    public static let prepare = Domain("bulwark/v1/prepare")
    public static let commit = Domain("bulwark/v1/commit")
    public static let checkpoint = Domain("bulwark/v1/checkpoint")
    public static let viewChange = Domain("bulwark/v1/view-change")
    public static let newView = Domain("bulwark/v1/new-view")
    public static let handshake = Domain("bulwark/v1/handshake")
    public static let stateTransfer = Domain("bulwark/v1/state-transfer")
    public static let state = Domain("bulwark/v1/state")
    public static let config = Domain("bulwark/v1/config")
    public static let configApproval = Domain("bulwark/v1/config-approval")
    public static let governance = Domain("bulwark/v1/governance")
    public static let policy = Domain("bulwark/v1/policy")
    public static let policyApproval = Domain("bulwark/v1/policy-approval")

    /// The bytes a signature covers: `prefix || clusterID || body`.
    public func message(cluster: ClusterID, body: (inout CanonicalWriter) -> Void) -> [UInt8] {
        var writer = CanonicalWriter(capacity: prefix.count + ClusterID.byteCount + 128)
        writer.writeRaw(prefix)
        writer.write(cluster)
        body(&writer)
        return writer.bytes
    }
}

/// Identifies one cluster. Generated at random by `bulwark cluster init`; part of every
/// signed or hashed message.
public struct ClusterID: Hashable, Sendable, CustomStringConvertible {
    public var raw: Bytes32
    public static let byteCount = 32

    public init(raw: Bytes32) { self.raw = raw }
    public init?(hex: String) {
        guard let bytes = Hex.decode(hex), let raw = Bytes32(bytes) else { return nil }
        self.raw = raw
    }
    public static func random() -> ClusterID { ClusterID(raw: Bytes32(SecureRandom.bytes(32))!) }

    public var hex: String { raw.withUnsafeBytes { Hex.encode($0) } }
    public var description: String { hex }
    @inlinable public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try raw.withUnsafeBytes(body)
    }
}
