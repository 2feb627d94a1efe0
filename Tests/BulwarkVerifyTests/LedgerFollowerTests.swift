import BulwarkCore
import BulwarkStateMachine
@testable import BulwarkStorage
import BulwarkTestSupport
@testable import BulwarkVerify
import Foundation
import Testing

/// `bulwark-verify follow`'s engine against a block log written under it: records land one
/// by one, half-written records wait, segments rotate, and damage fails at the right height.
@Suite struct LedgerFollowerTests {
    static let fixture = LedgerFixture.ledger(blocks: 20, requestsPerBlock: 3, checkpointInterval: 4)

    func temporaryDirectory() -> String {
        NSTemporaryDirectory() + "bulwark-follow-\(UUID().uuidString)"
    }

    /// Appends blocks `range` (1-based heights) of the fixture with their certificates.
    func append(_ log: BlockLog, _ range: ClosedRange<Int>) throws {
        for height in range {
            try log.append(Self.fixture.entries[height - 1])
            for cert in Self.fixture.executionCertificates where cert.height == Height(height) { try log.append(cert) }
        }
        try log.sync()
    }

    @Test func followsAWrittenLogAcrossSegmentsAndPartialRecords() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // Small segments: the log rotates every few blocks while the follower reads.
        let log = try BlockLog(directory: directory, segmentBytesMax: 3000)
        let follower = try LedgerFollower(config: Self.fixture.config, directory: directory, threads: 2)
        #expect(!follower.poll(), "nothing to read yet")
        try append(log, 1...3)
        #expect(follower.poll())
        #expect(follower.report.heights == 3 && follower.report.certifiedHeight == 0)
        try append(log, 4...9)
        #expect(follower.poll())
        #expect(follower.report.heights == 9 && follower.report.certifiedHeight == 8)
        #expect(try BlockLogReader(directory: directory).segments.count > 2, "the log rotated under the follower")

        // Half of the next record is on disk: a write in progress, not damage.
        let segments = try BlockLogReader(directory: directory).segments
        let last = directory + "/" + segments.last!
        let record = RecordFraming.frame(type: 1, payload: Self.fixture.entries[9].encoded())
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: last))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(record.prefix(record.count / 2)))
        #expect(!follower.poll())
        #expect(follower.report.problem == nil && follower.report.heights == 9)
        try handle.write(contentsOf: Data(record.suffix(from: record.count / 2)))
        try handle.close()
        #expect(follower.poll())
        #expect(follower.report.heights == 10)

        // The rest through a reopened log, as a restarted replica would write it.
        let reopened = try BlockLog(directory: directory, segmentBytesMax: 3000)
        try append(reopened, 11...20)
        #expect(follower.poll())
        let report = follower.report
        #expect(report.problem == nil, "\(String(describing: report.problem))")
        #expect(report.heights == 20 && report.certifiedHeight == 20)
        #expect(report.digest == LedgerDigest(height: 20, root: Self.fixture.tip.history.root))
        #expect(report.certifiedStateRoot == Self.fixture.stateRoot)
    }

    /// A record damaged while the follower runs fails it at the damaged block's height, and
    /// it reads nothing after; a half-written record that something follows is damage too.
    @Test func damageWhileFollowingFailsAtItsHeight() throws {
        let directory = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let log = try BlockLog(directory: directory)
        try append(log, 1...6)
        let follower = try LedgerFollower(config: Self.fixture.config, directory: directory, threads: 1)
        #expect(follower.poll() && follower.report.heights == 6)
        let segment = directory + "/" + BlockLogReader.segmentName(1)
        let size = try FileManager.default.attributesOfItem(atPath: segment)[.size] as! Int
        try append(log, 7...9)
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: segment)))
        bytes[size + 100] ^= 0x01  // inside block 7's record, which blocks 8 and 9 follow
        try Data(bytes).write(to: URL(fileURLWithPath: segment))
        #expect(!follower.poll())
        let problem = try #require(follower.report.problem)
        #expect(problem.height == 7 && problem.record == "block", "\(problem)")
        #expect(problem.reason.contains("checksum") && problem.reason.contains("byte \(size)"))
        #expect(follower.report.heights == 6)

        // A torn record followed by a good one: not a write in progress.
        let other = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: other) }
        let second = try BlockLog(directory: other)
        try append(second, 1...2)
        let tail = try LedgerFollower(config: Self.fixture.config, directory: other, threads: 1)
        #expect(tail.poll())
        let path = other + "/" + BlockLogReader.segmentName(1)
        let torn = RecordFraming.frame(type: 1, payload: Self.fixture.entries[2].encoded())
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(torn.prefix(torn.count - 1) + [torn.last! ^ 0xff]))
        #expect(!tail.poll() && tail.report.problem == nil, "a bad last record may still be being written")
        try handle.write(contentsOf: Data(RecordFraming.frame(type: 1, payload: Self.fixture.entries[3].encoded())))
        try handle.close()
        #expect(!tail.poll())
        #expect(tail.report.problem?.height == 3 && tail.report.problem?.record == "block")
    }
}
