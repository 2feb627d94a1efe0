/// Who is on the other end of a connection.
public enum PeerRole: Hashable, Sendable, CustomStringConvertible {
    case replica(ReplicaID)
    case client(PublicKey)

    public var description: String {
        switch self {
        case let .replica(id): return "replica \(id)"
        case let .client(key): return "client \(key.short)"
        }
    }
}

extension PeerRole: CanonicalCodable {
    public func encode(to w: inout CanonicalWriter) {
        switch self {
        case let .replica(id): w.write(UInt8(1)); w.write(id)
        case let .client(key): w.write(UInt8(2)); w.write(key)
        }
    }

    public init(from r: inout CanonicalReader) throws(CodecError) {
        let tag = try r.readUInt8("role tag")
        switch tag {
        case 1: self = .replica(try r.readUInt16("replica id"))
        case 2: self = .client(try r.readPublicKey("client key"))
        default: throw .unknownTag(type: "role", tag: tag)
        }
    }
}

/// The signed challenge-response every connection starts with (DESIGN.md §5):
///
/// 1. the connector sends `hello` (cluster, its claimed role, a fresh nonce);
/// 2. the acceptor answers `challenge` (its replica id, its own fresh nonce, and a signature
///    over both nonces, proving it holds its validator key);
/// 3. the connector answers `response`, a signature over both nonces and its role, proving
///    it holds the key of the role it claimed.
///
/// Signatures are domain-separated and bind both nonces and the cluster, so none can be
/// replayed in another session, another cluster, or the other direction.
public enum HandshakeMessage: Hashable, Sendable {
    case hello(cluster: ClusterID, role: PeerRole, nonce: Digest)
    case challenge(replica: ReplicaID, nonce: Digest, signature: Signature)
    case response(signature: Signature)

    public static func acceptorMessage(cluster: ClusterID, replica: ReplicaID, connectorNonce: Digest,
                                       acceptorNonce: Digest) -> [UInt8] {
        Domain.handshake.message(cluster: cluster) { w in
            w.write(UInt8(1)); w.write(replica); w.write(connectorNonce); w.write(acceptorNonce)
        }
    }

    public static func connectorMessage(cluster: ClusterID, role: PeerRole, connectorNonce: Digest,
                                        acceptorNonce: Digest) -> [UInt8] {
        Domain.handshake.message(cluster: cluster) { w in
            w.write(UInt8(2)); w.write(role); w.write(connectorNonce); w.write(acceptorNonce)
        }
    }
}

extension HandshakeMessage: CanonicalCodable {
    public func encode(to w: inout CanonicalWriter) {
        switch self {
        case let .hello(cluster, role, nonce): w.write(UInt8(1)); w.write(cluster); w.write(role); w.write(nonce)
        case let .challenge(replica, nonce, signature): w.write(UInt8(2)); w.write(replica); w.write(nonce); w.write(signature)
        case let .response(signature): w.write(UInt8(3)); w.write(signature)
        }
    }

    public init(from r: inout CanonicalReader) throws(CodecError) {
        let tag = try r.readUInt8("handshake tag")
        switch tag {
        case 1: self = .hello(cluster: try r.readClusterID("cluster"), role: try r.read(PeerRole.self), nonce: try r.readDigest("nonce"))
        case 2: self = .challenge(replica: try r.readUInt16("replica"), nonce: try r.readDigest("nonce"),
                                  signature: try r.readSignature("signature"))
        case 3: self = .response(signature: try r.readSignature("signature"))
        default: throw .unknownTag(type: "handshake", tag: tag)
        }
    }
}

/// Why a handshake failed, in one sentence.
public enum HandshakeError: Error, Equatable, Sendable, CustomStringConvertible {
    case wrongCluster
    case unknownReplica(ReplicaID)
    case unexpectedReplica(expected: ReplicaID, found: ReplicaID)
    case badSignature
    case unexpectedMessage
    case malformed(String)

    public var description: String {
        switch self {
        case .wrongCluster: return "the peer belongs to another cluster"
        case let .unknownReplica(id): return "the peer claims to be replica \(id), which is not a validator"
        case let .unexpectedReplica(expected, found): return "expected replica \(expected), reached replica \(found)"
        case .badSignature: return "the peer's handshake signature does not verify"
        case .unexpectedMessage: return "the peer sent a message out of handshake order"
        case let .malformed(reason): return "malformed handshake: \(reason)"
        }
    }
}

/// The acceptor's side of the handshake, as a small state machine independent of sockets.
public struct HandshakeAcceptor: Sendable {
    let config: ClusterConfig
    let id: ReplicaID
    let key: PrivateKey
    let nonce: Digest
    var hello: (role: PeerRole, nonce: Digest)?

    /// `nonce` must be fresh and unpredictable (the runtime draws it from `SecureRandom`).
    public init(config: ClusterConfig, id: ReplicaID, key: PrivateKey, nonce: Digest) {
        self.config = config
        self.id = id
        self.key = key
        self.nonce = nonce
    }

    /// Takes `hello`, returns the challenge to send.
    public mutating func receive(hello message: HandshakeMessage) throws(HandshakeError) -> HandshakeMessage {
        guard case let .hello(cluster, role, connectorNonce) = message, hello == nil else { throw .unexpectedMessage }
        guard cluster == config.clusterID else { throw .wrongCluster }
        if case let .replica(claimed) = role, config.validator(claimed) == nil { throw .unknownReplica(claimed) }
        hello = (role, connectorNonce)
        let signature = key.sign(HandshakeMessage.acceptorMessage(cluster: cluster, replica: id, connectorNonce: connectorNonce,
                                                                  acceptorNonce: nonce))
        return .challenge(replica: id, nonce: nonce, signature: signature)
    }

    /// Takes the response; returns the authenticated peer.
    public func receive(response message: HandshakeMessage) throws(HandshakeError) -> PeerRole {
        guard case let .response(signature) = message, let hello else { throw .unexpectedMessage }
        let key: PublicKey
        switch hello.role {
        case let .replica(replica): key = config.validator(replica)!.publicKey
        case let .client(client): key = client
        }
        let signed = HandshakeMessage.connectorMessage(cluster: config.clusterID, role: hello.role, connectorNonce: hello.nonce,
                                                       acceptorNonce: nonce)
        guard key.isValidSignature(signature, for: signed) else { throw .badSignature }
        return hello.role
    }
}

/// The connector's side of the handshake.
public struct HandshakeConnector: Sendable {
    let config: ClusterConfig
    let role: PeerRole
    let key: PrivateKey
    let nonce: Digest
    /// The replica this connection is meant to reach.
    public let expected: ReplicaID

    public init(config: ClusterConfig, role: PeerRole, key: PrivateKey, nonce: Digest, expected: ReplicaID) {
        self.config = config
        self.role = role
        self.key = key
        self.nonce = nonce
        self.expected = expected
    }

    public var hello: HandshakeMessage { .hello(cluster: config.clusterID, role: role, nonce: nonce) }

    /// Takes the acceptor's challenge; returns the response to send once the acceptor proved
    /// it is the expected replica.
    public func receive(challenge message: HandshakeMessage) throws(HandshakeError) -> HandshakeMessage {
        guard case let .challenge(replica, acceptorNonce, signature) = message else { throw .unexpectedMessage }
        guard replica == expected else { throw .unexpectedReplica(expected: expected, found: replica) }
        guard let validator = config.validator(replica) else { throw .unknownReplica(replica) }
        let signed = HandshakeMessage.acceptorMessage(cluster: config.clusterID, replica: replica, connectorNonce: nonce,
                                                      acceptorNonce: acceptorNonce)
        guard validator.publicKey.isValidSignature(signature, for: signed) else { throw .badSignature }
        return .response(signature: key.sign(HandshakeMessage.connectorMessage(
            cluster: config.clusterID, role: role, connectorNonce: nonce, acceptorNonce: acceptorNonce)))
    }
}
