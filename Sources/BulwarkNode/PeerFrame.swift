import BulwarkConsensus
import BulwarkCore

/// What replicas send each other.
public enum PeerFrame: Sendable {
    case consensus(Message)
    /// State transfer: send me the blocks in `from...to` (the sender caps how many).
    case fetchBlocks(from: Height, to: Height)
    /// State transfer: blocks with their commit certificates, which the receiver checks itself.
    case blocks([LedgerEntry])
}

extension PeerFrame: CanonicalCodable {
    public func encode(to w: inout CanonicalWriter) {
        switch self {
        case let .consensus(m): w.write(UInt8(1)); w.write(m)
        case let .fetchBlocks(from, to): w.write(UInt8(2)); w.write(from); w.write(to)
        case let .blocks(entries): w.write(UInt8(3)); w.write(entries)
        }
    }

    public init(from r: inout CanonicalReader) throws(CodecError) {
        let tag = try r.readUInt8("peer frame tag")
        switch tag {
        case 1: self = .consensus(try r.read(Message.self))
        case 2: self = .fetchBlocks(from: try r.readUInt64("from"), to: try r.readUInt64("to"))
        case 3: self = .blocks(try r.readArray(LedgerEntry.self, "blocks", max: ReplicaNode.transferBlocksMax))
        default: throw .unknownTag(type: "peer frame", tag: tag)
        }
    }
}
