/// A replica's answer to a client: the result of the client's request `requestID`, executed
/// at `height`. It carries no signature: it travels on the client's own connection, whose
/// frames are authenticated with the keys of that connection's handshake, so the replica and
/// the client are already known to each other. A client accepts a result once f+1 replicas
/// sent the same one.
public struct ClientReply: Hashable, Sendable {
    public var requestID: UInt64
    public var height: Height
    /// The view the replica was in when it answered: a hint for where the client sends its
    /// next request (`RequestRouting`), never part of what must match.
    public var view: View
    /// The encoded `OperationResult`.
    public var result: [UInt8]

    public init(requestID: UInt64, height: Height, view: View = 0, result: [UInt8]) {
        self.requestID = requestID
        self.height = height
        self.view = view
        self.result = result
    }
}

/// Why a replica refused a client's request before ordering it: a code with its fields, which
/// the client renders as a sentence (no prose crosses the wire).
public enum RequestRefusal: Hashable, Sendable, CustomStringConvertible {
    /// The request's encoding is longer than the cluster's `requestBytesMax`.
    case tooLarge(bytes: UInt64, limit: UInt64)
    /// The frame could not be decoded as a request.
    case malformed
    /// The client's signature does not verify for this request in this cluster.
    case badSignature
    /// The client has as many requests waiting to be ordered as a replica holds for one client,
    /// or the replica's pool is full: try again when earlier ones are answered.
    case rateLimited
    /// The cluster does not serve this client's key.
    case unknownClient

    public var description: String {
        switch self {
        case let .tooLarge(bytes, limit): return "the request of \(bytes) bytes exceeds the cluster's requestBytesMax (\(limit) bytes)"
        case .malformed: return "the replicas could not decode the request"
        case .badSignature: return "the request's signature does not verify (wrong key or cluster)"
        case .rateLimited: return "rate-limited: too many of this client's requests are waiting to be ordered"
        case .unknownClient: return "this cluster does not serve the client's key"
        }
    }
}

extension RequestRefusal: CanonicalCodable {
    public func encode(to w: inout CanonicalWriter) {
        switch self {
        case let .tooLarge(bytes, limit): w.write(UInt8(1)); w.write(bytes); w.write(limit)
        case .malformed: w.write(UInt8(2))
        case .badSignature: w.write(UInt8(3))
        case .rateLimited: w.write(UInt8(4))
        case .unknownClient: w.write(UInt8(5))
        }
    }

    public init(from r: inout CanonicalReader) throws(CodecError) {
        let tag = try r.readUInt8("refusal tag")
        switch tag {
        case 1: self = .tooLarge(bytes: try r.readUInt64("bytes"), limit: try r.readUInt64("limit"))
        case 2: self = .malformed
        case 3: self = .badSignature
        case 4: self = .rateLimited
        case 5: self = .unknownClient
        default: throw .unknownTag(type: "refusal", tag: tag)
        }
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
    /// The replica refused request `requestID` before ordering it (0 when the frame was too
    /// damaged to name one). A client gives up on a request once f+1 replicas refused it alike.
    case refused(requestID: UInt64, RequestRefusal)
    /// A replica joining the cluster (`bulwark node --join`) fetches the ledger as a client:
    /// send me the committed blocks in `from...to` (the replica caps how many).
    case fetchBlocks(from: Height, to: Height)
    /// Committed blocks with their commit certificates, which the receiver checks itself
    /// from genesis, as state transfer does.
    case blocks([LedgerEntry])
    /// A client following the cluster asks how the configuration changed after epoch `from`.
    case epochProofsRequest(from: UInt64, nonce: UInt64)
    /// The steps from epoch `from` on that the replica holds, in order (at most
    /// `EpochProof.perFrameMax`; none when it knows no later epoch); the client checks each.
    case epochProofs(nonce: UInt64, [EpochProof])
    /// A fast read (SPEC.md §8.6): `get key` from the replica's executed state, without
    /// ordering, once it has executed every height it sent a COMMIT for.
    case fastRead(key: [UInt8], nonce: UInt64)
    /// Its answer: the encoded `OperationResult` an ordered `get` would give at `height`. A
    /// client takes it only when 2f+1 validators gave the same result at the same height.
    case fastReadAnswer(nonce: UInt64, height: Height, result: [UInt8])

    /// At most this many blocks in one `blocks` answer.
    public static let blocksMax = 128
}

extension ClientReply: CanonicalCodable {
    public func encode(to w: inout CanonicalWriter) {
        w.write(requestID); w.write(height); w.write(view); w.writeBytes(result)
    }

    public init(from r: inout CanonicalReader) throws(CodecError) {
        self.init(requestID: try r.readUInt64("request id"), height: try r.readUInt64("height"),
                  view: try r.readUInt64("view"), result: try r.readBytes("result", max: CodecLimits.bytesMax))
    }
}

extension ClientFrame: CanonicalCodable {
    /// 2: replies lost their signature when connections became authenticated. 3: replies
    /// carry the replica's view, so a client sends to the primary alone (SPEC.md §8.5).
    static let version: UInt8 = 3

    public func encode(to w: inout CanonicalWriter) {
        w.write(Self.version)
        switch self {
        case let .request(request): w.write(UInt8(1)); w.write(request)
        case let .reply(reply): w.write(UInt8(2)); w.write(reply)
        case let .proveRequest(key, nonce): w.write(UInt8(3)); w.writeBytes(key); w.write(nonce)
        case let .proof(nonce, bundle): w.write(UInt8(4)); w.write(nonce); w.write(bundle)
        case let .proofUnavailable(nonce, reason): w.write(UInt8(5)); w.write(nonce); w.write(reason)
        case let .refused(requestID, refusal): w.write(UInt8(6)); w.write(requestID); w.write(refusal)
        case let .fetchBlocks(from, to): w.write(UInt8(7)); w.write(from); w.write(to)
        case let .blocks(entries): w.write(UInt8(8)); w.write(entries)
        case let .epochProofsRequest(from, nonce): w.write(UInt8(9)); w.write(from); w.write(nonce)
        case let .epochProofs(nonce, proofs): w.write(UInt8(10)); w.write(nonce); w.write(proofs)
        case let .fastRead(key, nonce): w.write(UInt8(11)); w.writeBytes(key); w.write(nonce)
        case let .fastReadAnswer(nonce, height, result):
            w.write(UInt8(12)); w.write(nonce); w.write(height); w.writeBytes(result)
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
        case 6: self = .refused(requestID: try r.readUInt64("request id"), try r.read(RequestRefusal.self))
        case 7: self = .fetchBlocks(from: try r.readUInt64("from"), to: try r.readUInt64("to"))
        case 8: self = .blocks(try r.readArray(LedgerEntry.self, "blocks", max: Self.blocksMax))
        case 9: self = .epochProofsRequest(from: try r.readUInt64("from"), nonce: try r.readUInt64("nonce"))
        case 10:
            self = .epochProofs(nonce: try r.readUInt64("nonce"),
                                try r.readArray(EpochProof.self, "epoch proofs", max: EpochProof.perFrameMax))
        case 11: self = .fastRead(key: try r.readKey(), nonce: try r.readUInt64("nonce"))
        case 12:
            self = .fastReadAnswer(nonce: try r.readUInt64("nonce"), height: try r.readUInt64("height"),
                                   result: try r.readBytes("result", max: CodecLimits.bytesMax))
        default: throw .unknownTag(type: "client frame", tag: tag)
        }
    }
}
