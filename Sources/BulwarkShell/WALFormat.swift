import BulwarkConsensus
import BulwarkCore

/// Every record of the consensus write-ahead log (SPEC.md §14.3), in one place: the tag of
/// each kind, the records the core asks to persist (`WALRecord`) and the journal's identity
/// record (`ConsensusJournal.identity`), which is always first.
enum WALTag: UInt8 {
    case sent = 1
    case prepared = 2
    case acceptedNewView = 3
    case identity = 4
}

extension WALRecord: CanonicalCodable {
    public func encode(to w: inout CanonicalWriter) {
        switch self {
        case let .sent(m): w.write(WALTag.sent.rawValue); w.write(m)
        case let .prepared(c, body): w.write(WALTag.prepared.rawValue); w.write(c); w.write(optional: body)
        case let .acceptedNewView(nv): w.write(WALTag.acceptedNewView.rawValue); w.write(nv)
        }
    }

    public init(from r: inout CanonicalReader) throws(CodecError) {
        let tag = try r.readUInt8("wal record tag")
        switch WALTag(rawValue: tag) {
        case .sent: self = .sent(try r.read(Message.self))
        case .prepared:
            let cert = try r.read(PreparedCertificate.self)
            let body = try r.readOptional(Block.self, "body")
            if let body, body.header != cert.proposal.header {
                throw .invalidValue(field: "body", reason: "not the certified block")
            }
            self = .prepared(cert, body: body)
        case .acceptedNewView: self = .acceptedNewView(try r.read(NewView.self))
        case .identity, nil: throw .unknownTag(type: "wal record", tag: tag)
        }
    }
}
