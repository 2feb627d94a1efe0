import BulwarkCore
import BulwarkStorage
import Foundation

/// Continuous audit of a live replica's ledger (`bulwark-verify follow`): each block and
/// execution certificate is checked as it lands, exactly as `LedgerAudit` checks a whole
/// ledger (the same `AuditReplay`), so the pinned digest advances only over verified blocks.
public final class LedgerFollower {
    var tail: LogTail
    let replay: AuditReplay
    let historyPath: String

    /// A follower of the block log in `directory` (it may not exist yet).
    public init(config: ClusterConfig, directory: String, threads: Int, fileSystem: any FileSystem = PosixFileSystem()) throws {
        tail = LogTail(directory: directory, fileSystem: fileSystem)
        historyPath = NSTemporaryDirectory() + "bulwark-follow-history-\(UUID().uuidString)"
        let history = try FileKeyHistory(path: historyPath, valueBytesMax: config.parameters.valueBytesMax)
        replay = AuditReplay(audit: LedgerAudit(config: config, threads: threads), history: history, certificates: [],
                             keepsPendingRoots: true)
    }

    deinit { try? PosixFileSystem().remove(historyPath) }

    /// What the follower has verified so far, and the first problem if there is one.
    public var report: AuditReport {
        var report = replay.report
        report.tip = replay.tip
        report.problem = replay.failure
        return report
    }

    /// Reads and checks what landed since the last call. Returns whether anything new was
    /// verified; after a problem (see `report.problem`) it reads nothing more.
    @discardableResult
    public func poll() -> Bool {
        guard replay.failure == nil else { return false }
        let before = (replay.report.heights, replay.report.executionCertificates)
        let items: [LogTail.Item]
        do { items = try tail.poll() } catch {
            replay.failure = AuditProblem(height: replay.report.heights + 1, record: "log", reason: "\(error)")
            return false
        }
        var blocks: [LedgerEntry] = []
        for item in items {
            switch item {
            case let .entry(entry):
                blocks.append(entry)
            case let .executionCertificate(certificate):
                replay.check(blocks)
                blocks = []
                replay.certify(certificate)
            }
        }
        replay.check(blocks)
        if replay.failure == nil, let damage = tail.damage {
            replay.failure = AuditProblem(damage)
        }
        return (replay.report.heights, replay.report.executionCertificates) != before
    }
}
