import BulwarkCore
import BulwarkStateMachine
@testable import BulwarkStorage
import BulwarkTestSupport
import BulwarkVerify
import Foundation
import Testing

/// Builds real ledgers, tampers with copies, and checks the auditor names the right height
/// and reason for each; an untouched ledger passes.
@Suite struct LedgerAuditTests {
    static let fixture = LedgerFixture.ledger(blocks: 12, requestsPerBlock: 3, checkpointInterval: 4)
    let directory = "/replica/blocks"
    var segment: String { "\(directory)/\(BlockLogReader.segmentName(1))" }

    /// The fixture's ledger written through the real block log.
    func written(_ fixture: LedgerFixture = fixture) throws -> SimulatedFileSystem {
        let fs = SimulatedFileSystem()
        let log = try BlockLog(directory: directory, fileSystem: fs)
        for entry in fixture.entries {
            try log.append(entry)
            for cert in fixture.executionCertificates where cert.height == entry.block.height { try log.append(cert) }
        }
        try log.sync()
        return fs
    }

    /// The segment's records, to be edited and written back with valid checksums.
    func records(_ fs: SimulatedFileSystem) -> [(type: UInt8, payload: [UInt8])] {
        RecordFraming.scan(fs.bytes(segment)!).records.map { ($0.type, $0.payload) }
    }

    func rewrite(_ fs: SimulatedFileSystem, _ records: [(type: UInt8, payload: [UInt8])]) throws {
        let file = try fs.open(segment, create: false)
        try file.truncate(to: 0)
        for record in records { try file.append(RecordFraming.frame(type: record.type, payload: record.payload)) }
        try file.sync()
    }

    /// Index in `records` of the block at `height`.
    func index(ofHeight height: Height, in records: [(type: UInt8, payload: [UInt8])]) -> Int {
        var seen: Height = 0
        for (i, record) in records.enumerated() where record.type == 1 {
            seen += 1
            if seen == height { return i }
        }
        fatalError("no block \(height)")
    }

    func audit(_ fs: SimulatedFileSystem, threads: Int = 2) -> AuditReport {
        LedgerAudit(config: Self.fixture.config, threads: threads).audit(directory: directory, fileSystem: fs)
    }

    /// Replaces the block at `height` with `change(entry)`, keeping checksums valid.
    func tamper(height: Height, _ change: (inout LedgerEntry) -> Void) throws -> AuditReport {
        let fs = try written()
        var all = records(fs)
        let i = index(ofHeight: height, in: all)
        var entry = try LedgerEntry(decoding: all[i].payload)
        change(&entry)
        all[i].payload = entry.encoded()
        try rewrite(fs, all)
        return audit(fs)
    }

    func vote(_ signer: PrivateKey, replica: ReplicaID, view: View, height: Height, hash: Digest) -> Vote {
        Vote(replica: replica, signature: signer.sign(CommitCertificate.signedMessage(
            cluster: Self.fixture.config.clusterID, view: view, height: height, blockHash: hash, replica: replica)))
    }

    @Test func anUntouchedLedgerPasses() throws {
        for threads in [1, 2] {
            let report = audit(try written(), threads: threads)
            #expect(report.passed, "\(String(describing: report.problem))")
            #expect(report.heights == 12 && report.requests == 36)
            #expect(report.executionCertificates == 3)
            #expect(report.finalStateRoot == Self.fixture.stateRoot)
            #expect(report.signaturesChecked == 36 + 12 * 3 + 3 * 3)
        }
    }

    @Test func aFlippedBitIsCaughtByItsChecksum() throws {
        let fs = try written()
        let offset = RecordFraming.scan(fs.bytes(segment)!).records[index(ofHeight: 5, in: records(fs))].offset
        for target in [Int(offset) + 2, Int(offset) + 5, Int(offset) + 60, Int(offset) + 200] {  // length, checksum, header, body
            let copy = try written()
            copy.corrupt(segment, at: target)
            let report = audit(copy)
            #expect(report.problem?.height == 5, "byte \(target): \(String(describing: report.problem))")
        }
    }

    @Test func aChangedRequestWithAValidChecksumIsCaught() throws {
        let report = try tamper(height: 5) { entry in
            entry.block.requests[0].operation = .put(key: Array("key-1".utf8), value: Array("stolen".utf8))
        }
        #expect(report.problem?.height == 5)
        #expect(report.problem?.reason.contains("txRoot") == true)
        // The same with the txRoot recomputed: the header, hence the certificate, no longer match.
        let again = try tamper(height: 5) { entry in
            entry.block.requests[0].operation = .put(key: Array("key-1".utf8), value: Array("stolen".utf8))
            entry.block.header.txRoot = Block.txRoot(of: entry.block.requests, cluster: Self.fixture.config.clusterID)
        }
        #expect(again.problem?.height == 5 && again.problem?.record == "commit certificate")
    }

    @Test func aChangedHeaderIsCaught() throws {
        let report = try tamper(height: 5) { $0.block.header.timestampMs += 1 }
        #expect(report.problem?.height == 5 && report.problem?.record == "commit certificate")
        #expect(report.problem?.reason.hasPrefix("names another height or block (segment-00000001.log, byte ") == true)
    }

    @Test func aFlippedSignatureIsCaught() throws {
        let report = try tamper(height: 5) { entry in
            var bytes = entry.certificate.votes[1].signature.bytes
            bytes[10] ^= 1
            entry.certificate.votes[1].signature = Signature(bytes)!
        }
        #expect(report.problem == AuditProblem(height: 5, record: "commit certificate",
                                              reason: "signature of replica 1 does not verify for view 0, height 5 and this block"))
        let request = try tamper(height: 7) { entry in
            var bytes = entry.block.requests[2].signature.bytes
            bytes[0] ^= 1
            entry.block.requests[2].signature = Signature(bytes)!
        }
        // The txRoot covers signatures too; either way height 7 is named.
        #expect(request.problem?.height == 7)
    }

    @Test func swappedRemovedAndDuplicatedBlocksAreCaught() throws {
        let fs = try written()
        let all = records(fs)
        let i5 = index(ofHeight: 5, in: all)
        let i6 = index(ofHeight: 6, in: all)
        var swapped = all
        swapped.swapAt(i5, i6)
        try rewrite(fs, swapped)
        #expect(audit(fs).problem?.height == 5)
        #expect(audit(fs).problem?.reason.contains("expected height 5, found 6") == true)

        var removed = all
        removed.remove(at: i5)
        try rewrite(fs, removed)
        #expect(audit(fs).problem?.height == 5)
        #expect(audit(fs).problem?.reason.hasPrefix("expected height 5, found 6 (segment-00000001.log, byte ") == true)

        var duplicated = all
        duplicated.insert(all[i5], at: i5 + 1)
        try rewrite(fs, duplicated)
        #expect(audit(fs).problem?.height == 6)
        #expect(audit(fs).problem?.reason.hasPrefix("expected height 6, found 5") == true)
    }

    @Test func forgedCommitCertificatesAreCaught() throws {
        let config = Self.fixture.config
        let keys = Self.fixture.keys
        let outsider = PrivateKey(seed: Array(repeating: 0x77, count: 32))!

        let repeated = try tamper(height: 5) { entry in
            entry.certificate.votes = [entry.certificate.votes[0], entry.certificate.votes[1], entry.certificate.votes[1]]
        }
        #expect(repeated.problem?.height == 5)
        #expect(repeated.problem?.reason.contains("replica 1 signs twice") == true)

        let nonValidator = try tamper(height: 5) { entry in
            entry.certificate.votes[2] = vote(outsider, replica: 9, view: 0, height: 5, hash: entry.block.hash)
        }
        #expect(nonValidator.problem == AuditProblem(height: 5, record: "commit certificate",
                                                     reason: "signer 9 is not a validator of epoch 0"))

        let impostor = try tamper(height: 5) { entry in
            entry.certificate.votes[2] = vote(outsider, replica: 2, view: 0, height: 5, hash: entry.block.hash)
        }
        #expect(impostor.problem?.record == "commit certificate" && impostor.problem?.height == 5)

        let otherHeight = try tamper(height: 5) { entry in
            entry.certificate.votes[2] = vote(keys[2], replica: 2, view: 0, height: 4, hash: entry.block.hash)
        }
        #expect(otherHeight.problem?.reason == "signature of replica 2 does not verify for view 0, height 5 and this block")

        let otherView = try tamper(height: 5) { entry in
            entry.certificate.votes[2] = vote(keys[2], replica: 2, view: 3, height: 5, hash: entry.block.hash)
        }
        #expect(otherView.problem?.height == 5 && otherView.problem?.record == "commit certificate")

        let short = try tamper(height: 5) { entry in entry.certificate.votes.removeLast() }
        #expect(short.problem == AuditProblem(height: 5, record: "commit certificate",
                                              reason: "2 distinct signers, quorum is \(config.quorum)"))
    }

    /// An execution certificate signed by a quorum over a state root the ledger does not
    /// produce: everything verifies except the replay.
    @Test func aWrongCertifiedStateRootIsCaughtByReplay() throws {
        let fs = try written()
        var all = records(fs)
        let i = all.firstIndex { $0.type == 2 }!
        var certificate = try ExecutionCertificate(decoding: all[i].payload)
        let lie = Digest.sha256([1, 2, 3])
        certificate = ExecutionCertificate(
            height: certificate.height, blockHash: certificate.blockHash, stateRoot: lie,
            votes: (0..<3).map { r in
                Vote(replica: ReplicaID(r), signature: Self.fixture.keys[r].sign(ExecutionCertificate.signedMessage(
                    cluster: Self.fixture.config.clusterID, height: certificate.height, blockHash: certificate.blockHash,
                    stateRoot: lie, replica: ReplicaID(r))))
            })
        all[i].payload = certificate.encoded()
        try rewrite(fs, all)
        let report = audit(fs)
        #expect(report.problem?.height == 4 && report.problem?.record == "execution certificate")
        #expect(report.problem?.reason.contains("differs from the replayed state root") == true)
    }

    /// `entry`'s commit certificate signed again by a quorum for its (changed) block, in `view`.
    func resign(_ entry: inout LedgerEntry, view: View? = nil) {
        let view = view ?? entry.certificate.view
        let hash = entry.block.hash
        entry.certificate = CommitCertificate(
            height: entry.block.height, view: view, blockHash: hash,
            votes: (0..<3).map { vote(Self.fixture.keys[$0], replica: ReplicaID($0), view: view, height: entry.block.height, hash: hash) })
    }

    /// Before the proposer rule, a block naming a proposer other than its view's primary,
    /// under a commit certificate a quorum really signed, passed at its own height.
    @Test func aProposerThatIsNotThePrimaryIsCaught() throws {
        let report = try tamper(height: 5) { entry in
            entry.block.header.proposer = 2
            resign(&entry)
        }
        #expect(report.problem == AuditProblem(height: 5, record: "block",
                                              reason: "proposer 2 is not the primary of the block's view (replica 0)"))
        // Said once: no "block 5:" inside the reason of a problem already at height 5.
        let link = try tamper(height: 5) { $0.block.header.prevBlockHash = .zero; resign(&$0) }
        #expect(link.problem?.description.hasPrefix(
            "height 5, block: prevBlockHash does not match the hash of block 4 (segment-00000001.log, byte ") == true)
    }

    /// A block proposed in view 1 cannot have committed in view 0.
    @Test func aCommitCertificateFromAViewBeforeTheBlocksIsCaught() throws {
        var fixture = LedgerFixture(checkpointInterval: 4)
        for b in 0..<5 { fixture.addBlock([.put(key: [UInt8(b)], value: [1])], view: b < 3 ? 0 : 1) }
        let honest = audit(try written(fixture))
        #expect(honest.passed, "\(String(describing: honest.problem))")
        let fs = try written(fixture)
        var all = records(fs)
        let i = index(ofHeight: 4, in: all)
        var entry = try LedgerEntry(decoding: all[i].payload)
        #expect(entry.block.header.view == 1 && entry.block.header.proposer == 1)
        resign(&entry, view: 0)
        all[i].payload = entry.encoded()
        try rewrite(fs, all)
        #expect(audit(fs).problem == AuditProblem(height: 4, record: "commit certificate",
                                                  reason: "view 0 is below the view 1 the block was proposed in"))
    }

    /// How far the state is certified: through the last execution certificate, and nowhere
    /// in a ledger that has none (which used to pass "replay" having compared nothing).
    @Test func theCertifiedHeightIsReported() throws {
        let full = audit(try written())
        #expect(full.certifiedHeight == 12 && full.uncertifiedBlocks == 0 && full.certifiedStateRoot == Self.fixture.stateRoot)
        var longer = LedgerFixture.ledger(blocks: 12, requestsPerBlock: 3, checkpointInterval: 4)
        longer.addBlock([.put(key: [1], value: [1])])
        let tail = audit(try written(longer))
        #expect(tail.passed && tail.certifiedHeight == 12 && tail.uncertifiedBlocks == 1)
        let fs = try written()
        try rewrite(fs, records(fs).filter { $0.type == 1 })
        let bare = audit(fs)
        #expect(bare.passed && bare.certifiedHeight == 0 && bare.uncertifiedBlocks == 12 && bare.certifiedStateRoot == nil)
    }

    /// An execution certificate naming a block the log does not hold is reported at its own
    /// height and as an execution certificate (it was reported one height later, as a block);
    /// one at a height that is not a checkpoint height is refused.
    @Test func aBadExecutionCertificateIsNamedAtItsHeight() throws {
        let fs = try written()
        var all = records(fs)
        let i = all.firstIndex { $0.type == 2 }!
        var certificate = try ExecutionCertificate(decoding: all[i].payload)
        #expect(certificate.height == 4)
        certificate.blockHash = Digest.sha256([9])
        all[i].payload = certificate.encoded()
        try rewrite(fs, all)
        let report = audit(fs)
        #expect(report.problem?.height == 4 && report.problem?.record == "execution certificate",
                "\(String(describing: report.problem))")
        #expect(report.problem?.reason.contains("names a block not in the log") == true)

        let shortLedger = LedgerFixture.ledger(blocks: 3, requestsPerBlock: 3, checkpointInterval: 4)
        let root = shortLedger.stateRoot
        let hash = shortLedger.tip.blockHash
        let offCheckpoint = ExecutionCertificate(height: 3, blockHash: hash, stateRoot: root, votes: (0..<3).map { r in
            Vote(replica: ReplicaID(r), signature: Self.fixture.keys[r].sign(ExecutionCertificate.signedMessage(
                cluster: Self.fixture.config.clusterID, height: 3, blockHash: hash, stateRoot: root, replica: ReplicaID(r))))
        })
        let other = try written()
        var withExtra = records(other)
        withExtra.insert((type: 2, payload: offCheckpoint.encoded()), at: index(ofHeight: 3, in: withExtra) + 1)
        try rewrite(other, withExtra)
        #expect(audit(other).problem == AuditProblem(height: 3, record: "execution certificate",
                                                     reason: "height 3 is not a checkpoint height (a multiple of checkpointInterval 4)"))
    }

    @Test func aTruncatedFinalRecordIsCaught() throws {
        let fs = try written()
        let bytes = fs.bytes(segment)!
        let file = try fs.open(segment, create: false)
        try file.truncate(to: UInt64(bytes.count - 20))
        let report = audit(fs)
        #expect(report.problem?.height == 13)
        #expect(report.problem?.reason.contains("truncated") == true)
        #expect(report.heights == 12, "everything before the torn record was verified")
    }

    @Test func digestsConsistencyAndInclusion() throws {
        let fs = try written()
        let reader = try BlockLogReader(directory: directory, fileSystem: fs)
        let old = LedgerDigest.of(reader, height: 5)
        let new = LedgerDigest.of(reader, height: 12)
        #expect(new.root == Self.fixture.tip.history.root)
        #expect(LedgerDigest(parsing: new.description) == new)
        let proof = try LedgerProofs.consistency(from: reader, old: old, new: new)
        try LedgerProofs.verifyConsistency(old: old, new: new, proof: proof)
        // A different history of the same length is not consistent with it.
        var other = LedgerFixture(checkpointInterval: 4)
        for b in 0..<5 { other.addBlock([.put(key: [UInt8(b)], value: [9])]) }
        let forked = LedgerDigest(height: 5, root: other.tip.history.root)
        #expect(throws: LedgerProofs.Failure.self) { try LedgerProofs.verifyConsistency(old: forked, new: new, proof: proof) }
        let (hash, path) = try LedgerProofs.inclusion(from: reader, height: 7, digest: new)
        try LedgerProofs.verifyInclusion(height: 7, blockHash: hash, digest: new, proof: path)
        #expect(throws: LedgerProofs.Failure.self) {
            try LedgerProofs.verifyInclusion(height: 7, blockHash: reader.blockHash(at: 8)!, digest: new, proof: path)
        }
    }

    @Test func compareFindsTheFirstDivergence() throws {
        var fork = LedgerFixture.ledger(blocks: 2, requestsPerBlock: 3, checkpointInterval: 4)
        fork.addBlock([.put(key: [1], value: [1])])
        let a = try BlockLogReader(directory: directory, fileSystem: try written())
        let b = try BlockLogReader(directory: directory, fileSystem: try written(fork))
        #expect(a.blockHash(at: 2) == b.blockHash(at: 2))
        #expect(a.blockHash(at: 3) != b.blockHash(at: 3))
    }

    @Test func keyProofBundlesVerifyAgainstTheCluster() throws {
        let fixture = Self.fixture
        let certificate = fixture.executionCertificates.last!
        #expect(certificate.height == 12)
        let bundle = KeyProofBundle(proof: fixture.prove(Array("key-1".utf8)), certificate: certificate)
        let parsed = try KeyProofBundle(fileText: bundle.fileText)
        let proof = try parsed.verify(config: fixture.config)
        #expect(proof.value == fixture.state.records[Array("key-1".utf8)]?.value)
        var lie = parsed
        lie.proof.value = Array("forged".utf8)
        #expect(throws: (any Error).self) { _ = try lie.verify(config: fixture.config) }
        var stale = parsed
        stale.certificate = fixture.executionCertificates.first!
        #expect(throws: (any Error).self) { _ = try stale.verify(config: fixture.config) }
    }
}
