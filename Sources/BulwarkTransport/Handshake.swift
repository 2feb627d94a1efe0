import BulwarkCore

/// The signed challenge-response every connection starts with (ARCHITECTURE.md §5):
///
/// 1. the connector sends `hello` (cluster, its claimed role, a fresh nonce, and the public
///    half of a fresh X25519 key pair);
/// 2. the acceptor answers `challenge` (its replica id, its own fresh nonce and exchange key,
///    and a signature over all of them, proving it holds its validator key);
/// 3. the connector answers `response`, a signature over the same and its role, proving it
///    holds the key of the role it claimed.
///
/// Signatures are domain-separated and bind both nonces, both exchange keys and the cluster,
/// so none can be replayed in another session, another cluster, or the other direction. The
/// exchange leaves both sides `SessionKeys`, with which every later frame is encrypted and
/// authenticated (`FrameCipher`): replies to clients need no signature of their own.
public enum HandshakeMessage: Hashable, Sendable {
    case hello(cluster: ClusterID, role: PeerRole, nonce: Digest, exchange: Bytes32)
    case challenge(replica: ReplicaID, nonce: Digest, exchange: Bytes32, signature: Signature)
    case response(signature: Signature)

    /// What both nonces and both exchange keys are, in the order every signature covers them.
    public struct Session: Sendable {
        public var connectorNonce: Digest
        public var acceptorNonce: Digest
        public var connectorExchange: Bytes32
        public var acceptorExchange: Bytes32

        func write(to w: inout CanonicalWriter) {
            w.write(connectorNonce); w.write(acceptorNonce)
            w.write(connectorExchange); w.write(acceptorExchange)
        }
    }

    public static func acceptorMessage(cluster: ClusterID, replica: ReplicaID, session: Session) -> [UInt8] {
        Domain.handshake.message(cluster: cluster) { w in
            w.write(UInt8(1)); w.write(replica); session.write(to: &w)
        }
    }

    public static func connectorMessage(cluster: ClusterID, role: PeerRole, session: Session) -> [UInt8] {
        Domain.handshake.message(cluster: cluster) { w in
            w.write(UInt8(2)); w.write(role); session.write(to: &w)
        }
    }
}

extension HandshakeMessage: CanonicalCodable {
    public func encode(to w: inout CanonicalWriter) {
        switch self {
        case let .hello(cluster, role, nonce, exchange):
            w.write(UInt8(1)); w.write(cluster); w.write(role); w.write(nonce); w.write(exchange)
        case let .challenge(replica, nonce, exchange, signature):
            w.write(UInt8(2)); w.write(replica); w.write(nonce); w.write(exchange); w.write(signature)
        case let .response(signature): w.write(UInt8(3)); w.write(signature)
        }
    }

    public init(from r: inout CanonicalReader) throws(CodecError) {
        let tag = try r.readUInt8("handshake tag")
        switch tag {
        case 1: self = .hello(cluster: try r.readClusterID("cluster"), role: try r.read(PeerRole.self), nonce: try r.readDigest("nonce"),
                              exchange: try r.readBytes32("exchange key"))
        case 2: self = .challenge(replica: try r.readUInt16("replica"), nonce: try r.readDigest("nonce"),
                                  exchange: try r.readBytes32("exchange key"), signature: try r.readSignature("signature"))
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
    case unusableExchangeKey
    case malformed(String)

    public var description: String {
        switch self {
        case .wrongCluster: return "the peer belongs to another cluster"
        case let .unknownReplica(id): return "the peer claims to be replica \(id), which is not a validator"
        case let .unexpectedReplica(expected, found): return "expected replica \(expected), reached replica \(found)"
        case .badSignature: return "the peer's handshake signature does not verify"
        case .unexpectedMessage: return "the peer sent a message out of handshake order"
        case .unusableExchangeKey: return "the peer's key-exchange key is not usable (a low-order point)"
        case let .malformed(reason): return "malformed handshake: \(reason)"
        }
    }
}

/// What a finished handshake establishes: who the peer is, and the keys that authenticate
/// the connection's frames from here on.
public struct HandshakeOutcome: Sendable {
    public let peer: PeerRole
    public let keys: SessionKeys
}

/// The acceptor's side of the handshake, as a small state machine independent of sockets.
public struct HandshakeAcceptor: Sendable {
    let config: ClusterConfig
    let id: ReplicaID
    let key: PrivateKey
    let nonce: Digest
    let exchange: ExchangeKeyPair
    var hello: (role: PeerRole, session: HandshakeMessage.Session, keys: SessionKeys)?

    /// `nonce` and `exchange` must be fresh and unpredictable (the runtime draws them from
    /// `SecureRandom`).
    public init(config: ClusterConfig, id: ReplicaID, key: PrivateKey, nonce: Digest, exchange: ExchangeKeyPair) {
        self.config = config
        self.id = id
        self.key = key
        self.nonce = nonce
        self.exchange = exchange
    }

    /// Takes `hello`, returns the challenge to send.
    public mutating func receive(hello message: HandshakeMessage) throws(HandshakeError) -> HandshakeMessage {
        guard case let .hello(cluster, role, connectorNonce, connectorExchange) = message, hello == nil else {
            throw .unexpectedMessage
        }
        guard cluster == config.clusterID else { throw .wrongCluster }
        if case let .replica(claimed) = role, config.validator(claimed) == nil { throw .unknownReplica(claimed) }
        guard let keys = exchange.acceptorKeys(connector: connectorExchange) else { throw .unusableExchangeKey }
        let session = HandshakeMessage.Session(connectorNonce: connectorNonce, acceptorNonce: nonce,
                                               connectorExchange: connectorExchange, acceptorExchange: exchange.publicKey)
        hello = (role, session, keys)
        let signature = key.sign(HandshakeMessage.acceptorMessage(cluster: cluster, replica: id, session: session))
        return .challenge(replica: id, nonce: nonce, exchange: exchange.publicKey, signature: signature)
    }

    /// Takes the response; returns the authenticated peer and the session's keys.
    public func receive(response message: HandshakeMessage) throws(HandshakeError) -> HandshakeOutcome {
        guard case let .response(signature) = message, let hello else { throw .unexpectedMessage }
        let key: PublicKey
        switch hello.role {
        case let .replica(replica): key = config.validator(replica)!.publicKey
        case let .client(client): key = client
        }
        let signed = HandshakeMessage.connectorMessage(cluster: config.clusterID, role: hello.role, session: hello.session)
        guard key.isValidSignature(signature, for: signed) else { throw .badSignature }
        return HandshakeOutcome(peer: hello.role, keys: hello.keys)
    }
}

/// The connector's side of the handshake.
public struct HandshakeConnector: Sendable {
    let config: ClusterConfig
    let role: PeerRole
    let key: PrivateKey
    let nonce: Digest
    let exchange: ExchangeKeyPair
    /// The replica this connection is meant to reach.
    public let expected: ReplicaID

    public init(config: ClusterConfig, role: PeerRole, key: PrivateKey, nonce: Digest, exchange: ExchangeKeyPair,
                expected: ReplicaID) {
        self.config = config
        self.role = role
        self.key = key
        self.nonce = nonce
        self.exchange = exchange
        self.expected = expected
    }

    public var hello: HandshakeMessage {
        .hello(cluster: config.clusterID, role: role, nonce: nonce, exchange: exchange.publicKey)
    }

    /// Takes the acceptor's challenge; once the acceptor proved it is the expected replica,
    /// returns the response to send and the session's keys.
    public func receive(challenge message: HandshakeMessage) throws(HandshakeError)
        -> (response: HandshakeMessage, outcome: HandshakeOutcome)
    {
        guard case let .challenge(replica, acceptorNonce, acceptorExchange, signature) = message else { throw .unexpectedMessage }
        guard replica == expected else { throw .unexpectedReplica(expected: expected, found: replica) }
        guard let validator = config.validator(replica) else { throw .unknownReplica(replica) }
        let session = HandshakeMessage.Session(connectorNonce: nonce, acceptorNonce: acceptorNonce,
                                               connectorExchange: exchange.publicKey, acceptorExchange: acceptorExchange)
        let signed = HandshakeMessage.acceptorMessage(cluster: config.clusterID, replica: replica, session: session)
        guard validator.publicKey.isValidSignature(signature, for: signed) else { throw .badSignature }
        guard let keys = exchange.connectorKeys(acceptor: acceptorExchange) else { throw .unusableExchangeKey }
        let response = HandshakeMessage.response(signature: key.sign(HandshakeMessage.connectorMessage(
            cluster: config.clusterID, role: role, session: session)))
        return (response, HandshakeOutcome(peer: .replica(replica), keys: keys))
    }
}
