/// A replica's answer to a client: the result of the client's request `requestID`, executed
/// at `height`. It carries no signature: it travels on the client's own connection, whose
/// frames are authenticated with the keys of that connection's handshake, so the replica and
/// the client are already known to each other. A client accepts a result once f+1 replicas
/// sent the same one.
public struct ClientReply: Hashable, Sendable {
    public var requestID: UInt64
    public var height: Height
    /// The encoded `OperationResult`.
    public var result: [UInt8]

    public init(requestID: UInt64, height: Height, result: [UInt8]) {
        self.requestID = requestID
        self.height = height
        self.result = result
    }
}

/// What clients and replicas say to each other on a client connection.
public enum ClientFrame: Hashable, Sendable {
    case request(Request)
    case reply(ClientReply)
    /// A verified read: prove `key`'s value at the newest certified checkpoint. Not ordered
    /// through consensus, so it reads state up to a checkpoint interval old, which the proof's
    /// height tells.
    case proveRequest(key: [UInt8], nonce: UInt64)
    /// The answer, which the client checks itself (no signature needed: the certificate is
    /// the cluster's, the proof ties the value to it).
    case proof(nonce: UInt64, KeyProofBundle)
    /// The replica cannot prove anything yet (no certified checkpoint), in one sentence.
    case proofUnavailable(nonce: UInt64, reason: String)
}

extension ClientReply: CanonicalCodable {
    public func encode(to w: inout CanonicalWriter) {
        w.write(requestID); w.write(height); w.writeBytes(result)
    }

    public init(from r: inout CanonicalReader) throws(CodecError) {
        self.init(requestID: try r.readUInt64("request id"), height: try r.readUInt64("height"),
                  result: try r.readBytes("result", max: CodecLimits.bytesMax))
    }
}

extension ClientFrame: CanonicalCodable {
    /// 2: replies lost their signature when connections became authenticated.
    static let version: UInt8 = 2

    public func encode(to w: inout CanonicalWriter) {
        w.write(Self.version)
        switch self {
        case let .request(request): w.write(UInt8(1)); w.write(request)
        case let .reply(reply): w.write(UInt8(2)); w.write(reply)
        case let .proveRequest(key, nonce): w.write(UInt8(3)); w.writeBytes(key); w.write(nonce)
        case let .proof(nonce, bundle): w.write(UInt8(4)); w.write(nonce); w.write(bundle)
        case let .proofUnavailable(nonce, reason): w.write(UInt8(5)); w.write(nonce); w.write(reason)
        }
    }

    public init(from r: inout CanonicalReader) throws(CodecError) {
        try r.readVersion("client frame", supported: Self.version)
        let tag = try r.readUInt8("client frame tag")
        switch tag {
        case 1: self = .request(try r.read(Request.self))
        case 2: self = .reply(try r.read(ClientReply.self))
        case 3: self = .proveRequest(key: try r.readKey(), nonce: try r.readUInt64("nonce"))
        case 4: self = .proof(nonce: try r.readUInt64("nonce"), try r.read(KeyProofBundle.self))
        case 5: self = .proofUnavailable(nonce: try r.readUInt64("nonce"), reason: try r.readString("reason", max: 1024))
        default: throw .unknownTag(type: "client frame", tag: tag)
        }
    }
}
