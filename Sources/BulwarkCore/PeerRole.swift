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
