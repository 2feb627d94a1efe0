import BulwarkCore

/// What a sealed block-log segment holds, written beside it (`segment-N.idx`) once the log has
/// moved on to the next segment, so that a replica's start-up reads and checks only the
/// segment still being written instead of every block of the whole ledger again.
///
/// An index is used only after checking it: its checksum, the segment's exact size, that it
/// continues the chain exactly where the segments before it ended, and that its positions and
/// certificates are consistent. One that fails any check is ignored and its segment scanned as
/// before. The blocks it names are checked again when read (`BlockLogReader.entry(at:)`:
/// checksum, and the block hash recorded here). The auditor never uses indexes.
struct SegmentIndex: Equatable {
    static let version: UInt8 = 1
    static let recordType: UInt8 = 1

    struct Block: Equatable {
        var offset: UInt64
        var end: UInt64
        var blockHash: Digest
    }

    /// The segment file's size when it was sealed.
    var segmentBytes: UInt64
    /// The chain before the segment's first block and after its last.
    var tipBefore: ChainTip
    var tipAfter: ChainTip
    var blocks: [Block]
    /// Execution certificates stored in this segment, in file order.
    var certificates: [ExecutionCertificate]

    static func name(of segment: String) -> String { String(segment.dropLast(".log".count)) + ".idx" }

    func encoded() -> [UInt8] {
        var w = CanonicalWriter(capacity: 256 + blocks.count * 48)
        w.write(Self.version)
        w.write(segmentBytes)
        w.write(tipBefore)
        w.write(tipAfter)
        w.write(UInt64(blocks.count))
        for block in blocks {
            w.write(block.offset)
            w.write(block.end)
            w.write(block.blockHash)
        }
        w.write(UInt64(certificates.count))
        for certificate in certificates { w.write(certificate) }
        return RecordFraming.frame(type: Self.recordType, payload: w.bytes)
    }

    /// Whether this index describes a segment of `segmentBytes` bytes that follows `tip`, with
    /// positions inside the segment in increasing order, one block per height, and
    /// certificates that each name a block of the log up to the segment's end (`earlierHash`
    /// gives the hashes of blocks before the segment).
    func fits(segmentBytes actual: UInt64, after tip: ChainTip, earlierHash: (Height) -> Digest?) -> Bool {
        guard segmentBytes == actual, tipBefore == tip, tipAfter.height == tip.height + UInt64(blocks.count),
              tipAfter.blockHash == (blocks.last?.blockHash ?? tip.blockHash) else { return false }
        var previousEnd: UInt64 = 0
        for block in blocks {
            guard block.offset >= previousEnd, block.end > block.offset, block.end <= segmentBytes else { return false }
            previousEnd = block.end
        }
        for certificate in certificates {
            guard certificate.height >= 1, certificate.height <= tipAfter.height else { return false }
            let hash = certificate.height > tip.height
                ? blocks[Int(certificate.height - tip.height) - 1].blockHash
                : earlierHash(certificate.height)
            guard hash == certificate.blockHash else { return false }
        }
        return true
    }
}

extension SegmentIndex {
    /// Decodes an index file's bytes; nil when they are not exactly one valid index record.
    init?(decoding bytes: [UInt8]) {
        let (records, ending) = RecordFraming.scan(bytes)
        guard ending == .clean, records.count == 1, let record = records.first, record.type == Self.recordType else {
            return nil
        }
        var r = CanonicalReader(record.payload)
        do throws(CodecError) {
            try r.readVersion("segment index", supported: Self.version)
            segmentBytes = try r.readUInt64("segment bytes")
            tipBefore = try r.read(ChainTip.self)
            tipAfter = try r.read(ChainTip.self)
            // Each entry takes 48 bytes: a larger count is damage, refused before allocating.
            let count = try r.readUInt64("block count")
            guard count <= UInt64(r.remaining / 48) else { return nil }
            blocks = []
            blocks.reserveCapacity(Int(count))
            for _ in 0..<count {
                blocks.append(Block(offset: try r.readUInt64("offset"), end: try r.readUInt64("end"),
                                    blockHash: try r.readDigest("block hash")))
            }
            let certificateCount = try r.readUInt64("certificate count")
            guard certificateCount <= UInt64(r.remaining) else { return nil }
            certificates = []
            for _ in 0..<certificateCount { certificates.append(try r.read(ExecutionCertificate.self)) }
            try r.finish()
        } catch {
            return nil
        }
    }
}
