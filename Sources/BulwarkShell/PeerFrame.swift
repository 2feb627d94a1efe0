import BulwarkConsensus
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
    /// A replica starting from an empty data directory, or rejoining, asks where the sender
    /// stands (SPEC.md §14.4).
    case progressQuery(nonce: UInt64)
    /// The answer: `nonce` as asked.
    case progress(nonce: UInt64, ProgressReport)

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
        case let .progressQuery(nonce): w.write(UInt8(4)); w.write(nonce)
        case let .progress(nonce, report): w.write(UInt8(5)); w.write(nonce); w.write(report)
        }
    }

    public init(from r: inout CanonicalReader) throws(CodecError) {
        let tag = try r.readUInt8("peer frame tag")
        switch tag {
        case 1: self = .consensus(epoch: try r.readUInt64("epoch"), try r.read(Message.self))
        case 2: self = .fetchBlocks(from: try r.readUInt64("from"), to: try r.readUInt64("to"))
        case 3: self = .blocks(try r.readArray(LedgerEntry.self, "blocks", max: PeerFrame.transferBlocksMax))
        case 4: self = .progressQuery(nonce: try r.readUInt64("nonce"))
        case 5: self = .progress(nonce: try r.readUInt64("nonce"), try r.read(ProgressReport.self))
        default: throw .unknownTag(type: "peer frame", tag: tag)
        }
    }
}

/// Where a replica stands, as it answers a `progressQuery`: what it runs as, its epoch and
/// view, and the newest block of its ledger with that block's commit certificate (nil while
/// its ledger is empty), which proves the height.
public struct ProgressReport: Hashable, Sendable {
    public enum Status: UInt8, Sendable {
        /// Serving normally.
        case running = 1
        /// Its data directory was empty and it waits to learn whether the cluster is new.
        case awaitingGenesis = 2
        /// Rejoining after a lost disk: it may be behind, and signs nothing below its floor.
        case rejoining = 3
    }

    public var status: Status
    public var epoch: UInt64
    public var view: View
    public var latest: CommitProof?
    /// The sender started this cluster at genesis counting the receiver's "awaiting genesis"
    /// answer to the sender's query with this nonce (SPEC.md §14.4): the receiver, still asking,
    /// knows whether it gave that answer in its present life.
    public var countedAnswer: UInt64?

    public init(status: Status, epoch: UInt64, view: View, latest: CommitProof?, countedAnswer: UInt64? = nil) {
        self.status = status
        self.epoch = epoch
        self.view = view
        self.latest = latest
        self.countedAnswer = countedAnswer
    }

    /// The height of the sender's ledger.
    public var height: Height { latest?.height ?? 0 }

    /// Whether the sender has seen nothing happen yet: no block, no view change, no epoch.
    public var isEmptyCluster: Bool { status != .rejoining && latest == nil && epoch == 0 && view == 0 }
}

extension ProgressReport: CanonicalCodable {
    public func encode(to w: inout CanonicalWriter) {
        w.write(status.rawValue)
        w.write(epoch)
        w.write(view)
        w.write(optional: latest)
        if let countedAnswer {
            w.write(true)
            w.write(countedAnswer)
        } else {
            w.write(false)
        }
    }

    public init(from r: inout CanonicalReader) throws(CodecError) {
        let tag = try r.readUInt8("progress status")
        guard let status = Status(rawValue: tag) else { throw .unknownTag(type: "progress status", tag: tag) }
        self.status = status
        epoch = try r.readUInt64("epoch")
        view = try r.readUInt64("view")
        latest = try r.readOptional(CommitProof.self, "latest")
        countedAnswer = try r.readBool("counted answer") ? try r.readUInt64("counted answer nonce") : nil
    }
}
