import BulwarkCore
import Testing

@Suite struct CodecTests {
    /// Round-trips `count` generated values and checks that every proper prefix of each
    /// encoding is rejected as truncated and that one trailing byte is rejected.
    func checkProperties<T: CanonicalCodable & Equatable>(_: T.Type, count: Int = 200, seed: UInt64,
                                                          generate: (inout Arbitrary) -> T) throws {
        var arbitrary = Arbitrary(seed: seed)
        for _ in 0..<count {
            let value = generate(&arbitrary)
            let bytes = value.encoded()
            #expect(try T(decoding: bytes) == value)
            // One encoding per value: re-encoding the decoded value gives the same bytes.
            #expect(try T(decoding: bytes).encoded() == bytes)
            for length in 0..<bytes.count {
                #expect {
                    _ = try T(decoding: Array(bytes.prefix(length)))
                } throws: { error in
                    if case .truncated = error as? CodecError { return true }
                    return false
                }
            }
            #expect(throws: CodecError.trailingBytes(count: 1)) { _ = try T(decoding: bytes + [0]) }
        }
    }

    @Test func operationsRoundTripAndRejectTruncation() throws {
        try checkProperties(LedgerOperation.self, count: 400, seed: 1) { $0.operation() }
    }

    @Test func requestsRoundTripAndRejectTruncation() throws {
        try checkProperties(Request.self, seed: 2) { $0.request() }
    }

    @Test func headersRoundTripAndRejectTruncation() throws {
        try checkProperties(BlockHeader.self, seed: 3) { $0.header() }
    }

    @Test func blocksRoundTripAndRejectTruncation() throws {
        try checkProperties(Block.self, count: 60, seed: 4) { $0.block() }
    }

    @Test func certificatesRoundTripAndRejectTruncation() throws {
        try checkProperties(CommitCertificate.self, seed: 5) { $0.commitCertificate() }
        try checkProperties(ExecutionCertificate.self, seed: 6) { $0.executionCertificate() }
    }

    @Test func resultsAndClientFramesRoundTripAndRejectTruncation() throws {
        try checkProperties(OperationResult.self, seed: 8) { $0.operationResult() }
        try checkProperties(ClientFrame.self, count: 60, seed: 9) { $0.clientFrame() }
    }

    @Test func accumulatorRoundTripsAndRejectsTruncation() throws {
        try checkProperties(MerkleAccumulator.self, count: 50, seed: 7) { arbitrary in
            var acc = MerkleAccumulator()
            for _ in 0..<Int.random(in: 0...40, using: &arbitrary.rng) { acc.append(leafHash: arbitrary.rng.digest()) }
            return acc
        }
    }

    @Test func integersAreLittleEndian() {
        var w = CanonicalWriter()
        w.write(UInt32(0x0403_0201))
        w.write(Int64(-2))
        #expect(w.bytes == [1, 2, 3, 4, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])
    }

    @Test func unknownTagsAndVersionsAreRejected() {
        #expect(throws: CodecError.unknownTag(type: "operation", tag: 99)) { _ = try LedgerOperation(decoding: [99]) }
        #expect(throws: CodecError.unknownTag(type: "operation", tag: 0)) { _ = try LedgerOperation(decoding: [0]) }
        var arbitrary = Arbitrary(seed: 8)
        var bytes = arbitrary.header().encoded()
        // Formats 1 and 2 (before headers carried the epoch) are gone.
        for version: UInt8 in [1, 2, 4] {
            bytes[0] = version
            #expect(throws: CodecError.unsupportedVersion(type: "block header", version: version)) {
                _ = try BlockHeader(decoding: bytes)
            }
        }
    }

    @Test func booleansOtherThanZeroOrOneAreRejected() {
        var r = CanonicalReader([2])
        #expect(throws: CodecError.self) { _ = try r.readBool("flag") }
    }

    /// A hostile length prefix is refused before anything is allocated.
    @Test func hugeLengthPrefixesAreRejectedBeforeAllocation() {
        // put: tag 1, then a key length of 0xFFFFFFFF.
        #expect(throws: CodecError.tooLarge(field: "key length", length: Int(UInt32.max), max: CodecLimits.keyBytesMax)) {
            _ = try LedgerOperation(decoding: [1, 0xff, 0xff, 0xff, 0xff])
        }
        // An array count within the limit but beyond the remaining input is truncated.
        var w = CanonicalWriter()
        w.write(UInt8(5))
        w.write(UInt32(1000))
        #expect {
            _ = try LedgerOperation(decoding: w.bytes)
        } throws: { error in
            if case .truncated = error as? CodecError { return true }
            return false
        }
    }

    @Test func votesMustBeStrictlyIncreasing() throws {
        let sig = Signature(Array(repeating: 1, count: 64))!
        var cert = CommitCertificate(height: 1, view: 0, blockHash: .zero,
                                     votes: [Vote(replica: 0, signature: sig), Vote(replica: 1, signature: sig)])
        #expect(try CommitCertificate(decoding: cert.encoded()) == cert)
        cert.votes = [Vote(replica: 1, signature: sig), Vote(replica: 1, signature: sig)]
        #expect(throws: CodecError.invalidValue(field: "commit votes", reason: "replica 1 signs twice")) {
            _ = try CommitCertificate(decoding: cert.encoded())
        }
        cert.votes = [Vote(replica: 2, signature: sig), Vote(replica: 1, signature: sig)]
        #expect(throws: CodecError.self) { _ = try CommitCertificate(decoding: cert.encoded()) }
    }

    @Test func invalidUTF8IsRejected() {
        var w = CanonicalWriter()
        w.writeBytes([0xff, 0xfe])
        var r = CanonicalReader(w.bytes)
        #expect(throws: CodecError.invalidValue(field: "name", reason: "not valid UTF-8")) {
            _ = try r.readString("name", max: 10)
        }
    }
}
