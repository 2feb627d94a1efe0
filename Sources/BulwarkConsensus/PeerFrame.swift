import BulwarkCore

/// What replicas send each other.
public enum PeerFrame: Sendable {
    /// A consensus message of the sender's epoch (SPEC.md §14.2): a receiver in another epoch
    /// does not step it.
    case consensus(epoch: UInt64, Message)
    /// State transfer: send me the blocks in `from...to` (the sender caps how many).
    case fetchBlocks(from: Height, to: Height)
    /// State transfer: blocks with their commit certificates, which the receiver checks itself.
    case blocks([LedgerEntry])

    /// At most this many blocks in one state-transfer answer.
    public static let transferBlocksMax = 128

    /// The blocks to serve for a peer's `fetchBlocks(from, to)`: at most `transferBlocksMax`
    /// of them, none beyond this ledger; nil when there is nothing to serve. Both bounds are
    /// the peer's choice, so they are compared before any arithmetic: once `from <= to` and
    /// `from <= ledgerHeight`, neither difference underflows, and `from + extra` stays at or
    /// below `ledgerHeight`.
    public static func transferRange(from: Height, to: Height, ledgerHeight: Height) -> ClosedRange<Height>? {
        guard from >= 1, from <= to, from <= ledgerHeight else { return nil }
        let extra = min(to - from, ledgerHeight - from, Height(transferBlocksMax - 1))
        return from...(from + extra)
    }
}

extension PeerFrame: CanonicalCodable {
    public func encode(to w: inout CanonicalWriter) {
        switch self {
        case let .consensus(epoch, m): w.write(UInt8(1)); w.write(epoch); w.write(m)
        case let .fetchBlocks(from, to): w.write(UInt8(2)); w.write(from); w.write(to)
        case let .blocks(entries): w.write(UInt8(3)); w.write(entries)
        }
    }

    public init(from r: inout CanonicalReader) throws(CodecError) {
        let tag = try r.readUInt8("peer frame tag")
        switch tag {
        case 1: self = .consensus(epoch: try r.readUInt64("epoch"), try r.read(Message.self))
        case 2: self = .fetchBlocks(from: try r.readUInt64("from"), to: try r.readUInt64("to"))
        case 3: self = .blocks(try r.readArray(LedgerEntry.self, "blocks", max: PeerFrame.transferBlocksMax))
        default: throw .unknownTag(type: "peer frame", tag: tag)
        }
    }
}
