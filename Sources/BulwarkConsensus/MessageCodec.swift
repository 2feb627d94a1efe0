import BulwarkCore

/// Canonical encodings of the consensus messages, for the network and the write-ahead log.
enum ConsensusLimits {
    /// Upper bound on heights carried by one view-change or new-view message: the largest
    /// watermark window a configuration may set.
    static let heightsPerMessageMax = Int(ProtocolBounds.watermarkWindowMax)
}

extension PrePrepare: CanonicalCodable {
    public func encode(to w: inout CanonicalWriter) {
        w.write(view); w.write(block); w.write(replica); w.write(signature)
    }

    public init(from r: inout CanonicalReader) throws(CodecError) {
        self.init(view: try r.readUInt64("view"), block: try r.read(Block.self), replica: try r.readUInt16("replica"),
                  signature: try r.readSignature("signature"))
    }
}

extension Prepare: CanonicalCodable {
    public func encode(to w: inout CanonicalWriter) {
        w.write(view); w.write(height); w.write(blockHash); w.write(replica); w.write(signature)
    }

    public init(from r: inout CanonicalReader) throws(CodecError) {
        self.init(view: try r.readUInt64("view"), height: try r.readUInt64("height"), blockHash: try r.readDigest("blockHash"),
                  replica: try r.readUInt16("replica"), signature: try r.readSignature("signature"))
    }
}

extension Commit: CanonicalCodable {
    public func encode(to w: inout CanonicalWriter) {
        w.write(view); w.write(height); w.write(blockHash); w.write(replica); w.write(signature)
    }

    public init(from r: inout CanonicalReader) throws(CodecError) {
        self.init(view: try r.readUInt64("view"), height: try r.readUInt64("height"), blockHash: try r.readDigest("blockHash"),
                  replica: try r.readUInt16("replica"), signature: try r.readSignature("signature"))
    }
}

extension Checkpoint: CanonicalCodable {
    public func encode(to w: inout CanonicalWriter) {
        w.write(height); w.write(blockHash); w.write(stateRoot); w.write(replica); w.write(signature)
    }

    public init(from r: inout CanonicalReader) throws(CodecError) {
        self.init(height: try r.readUInt64("height"), blockHash: try r.readDigest("blockHash"),
                  stateRoot: try r.readDigest("stateRoot"), replica: try r.readUInt16("replica"),
                  signature: try r.readSignature("signature"))
    }
}

extension CheckpointProof: CanonicalCodable {
    public func encode(to w: inout CanonicalWriter) {
        w.write(certificate); w.write(header); w.write(historyBefore)
    }

    public init(from r: inout CanonicalReader) throws(CodecError) {
        self.init(certificate: try r.read(ExecutionCertificate.self), header: try r.read(BlockHeader.self),
                  historyBefore: try r.read(MerkleAccumulator.self))
    }
}

extension CommitProof: CanonicalCodable {
    public func encode(to w: inout CanonicalWriter) {
        w.write(header); w.write(certificate)
    }

    public init(from r: inout CanonicalReader) throws(CodecError) {
        self.init(header: try r.read(BlockHeader.self), certificate: try r.read(CommitCertificate.self))
    }
}

extension Proposal: CanonicalCodable {
    public func encode(to w: inout CanonicalWriter) {
        w.write(view); w.write(header); w.write(replica); w.write(signature)
    }

    public init(from r: inout CanonicalReader) throws(CodecError) {
        self.init(view: try r.readUInt64("view"), header: try r.read(BlockHeader.self), replica: try r.readUInt16("replica"),
                  signature: try r.readSignature("signature"))
    }
}

extension PreparedCertificate: CanonicalCodable {
    public func encode(to w: inout CanonicalWriter) {
        w.write(proposal); w.write(prepares)
    }

    /// Prepares must come in strictly increasing replica order, as `init` puts them: a list in
    /// any other order would be a second encoding of the same certificate (found by fuzzing).
    public init(from r: inout CanonicalReader) throws(CodecError) {
        let proposal = try r.read(Proposal.self)
        let prepares = try r.readArray(Prepare.self, "prepares", max: CodecLimits.votesMax)
        for (a, b) in zip(prepares, prepares.dropFirst()) where a.replica >= b.replica {
            throw .invalidValue(field: "prepares", reason: "not in strictly increasing replica order")
        }
        self.init(proposal: proposal, prepares: prepares)
    }
}

extension ViewChange: CanonicalCodable {
    func encodeBody(to w: inout CanonicalWriter) {
        w.write(newView)
        w.write(optional: checkpoint)
        w.write(prepared)
        w.write(replica)
    }

    public func encode(to w: inout CanonicalWriter) {
        encodeBody(to: &w)
        w.write(signature)
    }

    public init(from r: inout CanonicalReader) throws(CodecError) {
        self.init(newView: try r.readUInt64("new view"), checkpoint: try r.readOptional(CheckpointProof.self, "checkpoint"),
                  prepared: try r.readArray(PreparedCertificate.self, "prepared", max: ConsensusLimits.heightsPerMessageMax),
                  replica: try r.readUInt16("replica"), signature: try r.readSignature("signature"))
    }
}

extension NewView: CanonicalCodable {
    func encodeBody(to w: inout CanonicalWriter) {
        w.write(view)
        w.write(viewChanges)
        w.write(proposals)
        w.write(replica)
    }

    public func encode(to w: inout CanonicalWriter) {
        encodeBody(to: &w)
        w.write(signature)
    }

    public init(from r: inout CanonicalReader) throws(CodecError) {
        self.init(view: try r.readUInt64("view"),
                  viewChanges: try r.readArray(ViewChange.self, "view changes", max: CodecLimits.votesMax),
                  proposals: try r.readArray(Proposal.self, "proposals", max: ConsensusLimits.heightsPerMessageMax),
                  replica: try r.readUInt16("replica"), signature: try r.readSignature("signature"))
    }
}

extension Message: CanonicalCodable {
    static let version: UInt8 = 2

    public func encode(to w: inout CanonicalWriter) {
        w.write(Self.version)
        switch self {
        case let .request(m): w.write(UInt8(1)); w.write(m)
        case let .prePrepare(m): w.write(UInt8(2)); w.write(m)
        case let .prepare(m): w.write(UInt8(3)); w.write(m)
        case let .commit(m): w.write(UInt8(4)); w.write(m)
        case let .checkpoint(m): w.write(UInt8(5)); w.write(m)
        case let .checkpointProof(m): w.write(UInt8(6)); w.write(m)
        case let .viewChange(m): w.write(UInt8(7)); w.write(m)
        case let .newView(m): w.write(UInt8(8)); w.write(m)
        case let .commitProof(m): w.write(UInt8(9)); w.write(m)
        }
    }

    public init(from r: inout CanonicalReader) throws(CodecError) {
        try r.readVersion("message", supported: Self.version)
        let tag = try r.readUInt8("message tag")
        switch tag {
        case 1: self = .request(try r.read(Request.self))
        case 2: self = .prePrepare(try r.read(PrePrepare.self))
        case 3: self = .prepare(try r.read(Prepare.self))
        case 4: self = .commit(try r.read(Commit.self))
        case 5: self = .checkpoint(try r.read(Checkpoint.self))
        case 6: self = .checkpointProof(try r.read(CheckpointProof.self))
        case 7: self = .viewChange(try r.read(ViewChange.self))
        case 8: self = .newView(try r.read(NewView.self))
        case 9: self = .commitProof(try r.read(CommitProof.self))
        default: throw .unknownTag(type: "message", tag: tag)
        }
    }
}

/// A durable record the replica writes before sending what depends on it.
public enum WALRecord: Hashable, Sendable {
    /// A message this replica signed and is about to send.
    case sent(Message)
    /// A prepared certificate this replica formed, recorded before it sends COMMIT so that a
    /// restart cannot forget the lock (PITFALLS: amnesia), with the block's body when this
    /// replica holds it (a view change after the restart may need to hand it on).
    case prepared(PreparedCertificate, body: Block?)
    /// Another primary's NEW-VIEW that this replica checked and entered the view by, recorded
    /// before the prepares it sends for the view's proposals, so that a restart comes back in
    /// the view knowing what the view must re-propose.
    case acceptedNewView(NewView)

    /// The height the record is about, for garbage collection below a stable checkpoint; nil
    /// for records that are kept until a later view supersedes them.
    public var height: Height? {
        switch self {
        case let .prepared(cert, _): return cert.height
        case .acceptedNewView: return nil
        case let .sent(message):
            switch message {
            case let .prePrepare(m): return m.height
            case let .prepare(m): return m.height
            case let .commit(m): return m.height
            case let .checkpoint(m): return m.height
            case .request, .checkpointProof, .commitProof, .viewChange, .newView: return nil
            }
        }
    }
}
