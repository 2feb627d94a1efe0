import BulwarkCore
import BulwarkStateMachine
import BulwarkStorage
import Dispatch
import Foundation

/// The first thing found wrong in a ledger: where, which record, why.
public struct AuditProblem: Error, Equatable, Sendable, CustomStringConvertible {
    public var height: Height
    /// Which record: "block", "commit certificate", "request 3", "execution certificate", "segment".
    public var record: String
    public var reason: String

    public init(height: Height, record: String, reason: String) {
        self.height = height
        self.record = record
        self.reason = reason
    }

    public var description: String { "height \(height), \(record): \(reason)" }

    /// Damage a log reader or follower found, with where it is.
    public init(_ damage: LogDamage) {
        self.init(height: damage.height, record: damage.record,
                  reason: "\(damage.reason) (\(damage.segment), byte \(damage.offset))")
    }

    /// The first damage `reader` met, a torn final record included (to an auditor, a file
    /// cut short is damage), or nil for an intact log.
    public static func damage(of reader: BlockLogReader) -> AuditProblem? {
        if let damage = reader.damage { return AuditProblem(damage) }
        guard let torn = reader.tornTail else { return nil }
        return AuditProblem(LogDamage(height: reader.height + 1, segment: torn.segment, offset: torn.offset,
                                      reason: "the final record is truncated", record: LogDamage.recordKind(type: nil)))
    }
}

/// What an audit covered.
/// A request the client policy denied, as the replay found it in the ledger.
public struct DeniedRequest: Sendable {
    public var height: Height
    public var client: PublicKey
    public var requestID: UInt64
    public var denial: PermissionDenial
}

public struct AuditReport: Sendable {
    public var heights: Height = 0
    public var requests = 0
    public var commitCertificates = 0
    public var executionCertificates = 0
    public var signaturesChecked = 0
    public var elapsedSeconds = 0.0
    /// The replayed state root after the last block checked; certified only when
    /// `certifiedHeight` reaches it.
    public var finalStateRoot: Digest?
    /// The highest height whose replayed state an execution certificate of the ledger
    /// certified (0: none), and that state root (SPEC.md §11).
    public var certifiedHeight: Height = 0
    public var certifiedStateRoot: Digest?
    public var tip: ChainTip = .genesis
    /// Every epoch the ledger reached, from epoch 0 (cluster.json) on (SPEC.md §18).
    public var epochs: [EpochRecord] = []
    /// Client policy changes applied, and requests the policy denied (the first
    /// `deniedListedMax` of them listed): the replay enforced the policy in force at each height.
    public var policyChanges = 0
    public var deniedRequests = 0
    public var denied: [DeniedRequest] = []
    public static let deniedListedMax = 100
    public var problem: AuditProblem?
    /// Damage after the blocks checked, passed over because the caller asked to audit the
    /// intact prefix (`acceptsDamagedTail`).
    public var damageIgnored: AuditProblem?

    /// Blocks after the certified height: agreed, but their execution not covered by any
    /// execution certificate.
    public var uncertifiedBlocks: Height { heights - certifiedHeight }
    /// The ledger digest of the blocks checked.
    public var digest: LedgerDigest { LedgerDigest(height: tip.height, root: tip.history.root) }

    public var passed: Bool { problem == nil }
    public var blocksPerSecond: Double { elapsedSeconds > 0 ? Double(heights) / elapsedSeconds : 0 }
    public var requestsPerSecond: Double { elapsedSeconds > 0 ? Double(requests) / elapsedSeconds : 0 }
}

/// One configuration epoch as the audit replayed it.
public struct EpochRecord: Hashable, Sendable {
    public var epoch: UInt64
    public var firstHeight: Height
    public var config: ClusterConfig
    /// The last block of the epoch, once the ledger reached it; nil for the epoch in force.
    public var lastHeight: Height?
    /// The proposal whose approvals made this epoch (nil for epoch 0).
    public var proposal: Digest?
    /// The admins (positions in the previous epoch's `admins`) who approved it.
    public var approvers: [UInt16] = []
}

/// Audits one replica's ledger with nothing but the cluster's public configuration
/// (ARCHITECTURE.md §6): record checksums, the hash chain and history roots, txRoots, every client
/// signature, every commit certificate, every execution certificate, and a full replay of the
/// state machine whose state roots must equal the certified ones. Signatures are checked in
/// parallel; everything else in height order, so the first problem reported is the first bad
/// height.
public struct LedgerAudit {
    public let config: ClusterConfig
    public var threads: Int
    /// Called with (verified height, total height) now and then on long logs.
    public var progress: ((Height, Height) -> Void)?
    /// Blocks whose signatures are checked together.
    var batchBlocks = 256
    /// Audit the intact blocks before damage, reporting the damage in `damageIgnored`
    /// instead of failing (`bulwark-verify log --prefix`).
    public var acceptsDamagedTail = false

    public init(config: ClusterConfig, threads: Int) {
        self.config = config
        self.threads = max(1, threads)
    }

    public func audit(directory: String, fileSystem: any FileSystem = PosixFileSystem()) -> AuditReport {
        let started = ContinuousClock.now
        var report = auditUntimed(directory: directory, fileSystem: fileSystem)
        let elapsed = ContinuousClock.now - started
        report.elapsedSeconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return report
    }

    func auditUntimed(directory: String, fileSystem: any FileSystem) -> AuditReport {
        var report = AuditReport()
        let reader: BlockLogReader
        switch openLog(directory: directory, fileSystem: fileSystem) {
        case let .failure(problem):
            report.problem = problem
            return report
        case let .success(opened): reader = opened
        }
        // Key histories of the replay go to a temporary file, as on a replica, so auditing a
        // long ledger does not hold every value ever written in memory.
        let historyPath = NSTemporaryDirectory() + "bulwark-verify-history-\(UUID().uuidString)"
        defer { try? PosixFileSystem().remove(historyPath) }
        let history: FileKeyHistory
        do { history = try FileKeyHistory(path: historyPath, valueBytesMax: config.parameters.valueBytesMax) } catch {
            report.problem = AuditProblem(height: 1, record: "log", reason: "cannot replay the state: \(error)")
            return report
        }
        let replay = AuditReplay(audit: self, history: history, certificates: reader.executionCertificates)
        replay.run(reader)
        return replay.finish(reader)
    }

    /// The log's reader, or why there is nothing to audit.
    func openLog(directory: String, fileSystem: any FileSystem) -> Result<BlockLogReader, AuditProblem> {
        guard fileSystem.exists(directory) else {
            return .failure(AuditProblem(height: 1, record: "log", reason: "\(directory) does not exist"))
        }
        let reader: BlockLogReader
        do { reader = try BlockLogReader(directory: directory, fileSystem: fileSystem) } catch {
            return .failure(AuditProblem(height: 1, record: "log", reason: "\(error)"))
        }
        if reader.segments.isEmpty {
            return .failure(AuditProblem(height: 1, record: "log", reason: "\(directory) holds no block log segments"))
        }
        return .success(reader)
    }

    /// One signature to check, and which record it belongs to.
    struct SignatureCheck: Sendable {
        var height: Height
        var record: String
        var key: PublicKey?
        var signature: Signature
        var message: [UInt8]
    }

    /// The signatures of `batch`, with the keys of the configuration `governance` (the state
    /// before the batch) says is in force at each height. A change that the batch itself
    /// schedules is not known yet: `checkBlock` and `checkExecution` verify again, at once,
    /// any signature checked against a key other than the one in force.
    func signatureChecks(_ batch: [LedgerEntry], certificates: [Height: [ExecutionCertificate]],
                         governance: Governance) -> [SignatureCheck] {
        var checks: [SignatureCheck] = []
        let cluster = config.clusterID
        for entry in batch {
            let height = entry.block.height
            let config = governance.scheduled.map { height > $0.lastHeight ? $0.config : governance.config } ?? governance.config
            for (index, request) in entry.block.requests.enumerated() {
                checks.append(SignatureCheck(
                    height: height, record: "request \(index)", key: request.client, signature: request.signature,
                    message: request.signedBytes(cluster: cluster)))
            }
            let certificate = entry.certificate
            for vote in certificate.votes {
                checks.append(SignatureCheck(
                    height: height, record: "commit certificate", key: config.validator(vote.replica)?.publicKey,
                    signature: vote.signature,
                    message: CommitCertificate.signedMessage(cluster: cluster, view: certificate.view, height: certificate.height,
                                                             blockHash: certificate.blockHash, replica: vote.replica)))
            }
            for execution in certificates[height] ?? [] {
                for vote in execution.votes {
                    checks.append(SignatureCheck(
                        height: height, record: "execution certificate", key: config.validator(vote.replica)?.publicKey,
                        signature: vote.signature,
                        message: ExecutionCertificate.signedMessage(cluster: cluster, height: execution.height,
                                                                    blockHash: execution.blockHash,
                                                                    stateRoot: execution.stateRoot, replica: vote.replica)))
                }
            }
        }
        return checks
    }

    /// Results being computed on worker threads.
    final class PendingResults: @unchecked Sendable {
        private let group = DispatchGroup()
        // Written once by the worker before `group.leave()`, read only after `group.wait()`.
        var results: [Bool] = []

        init(_ work: @escaping @Sendable () -> [Bool]) {
            group.enter()
            DispatchQueue.global().async { [self] in
                results = work()
                group.leave()
            }
        }

        @discardableResult
        func wait() -> [Bool] {
            group.wait()
            return results
        }
    }

    func verifyInBackground(_ checks: [SignatureCheck]) -> PendingResults {
        let threads = self.threads
        return PendingResults { Self.verifyInParallel(checks, threads: threads) }
    }

    /// Verifies every check, spread over `threads` threads.
    static func verifyInParallel(_ checks: [SignatureCheck], threads: Int) -> [Bool] {
        var results = [Bool](repeating: false, count: checks.count)
        let workers = min(threads, max(1, checks.count))
        results.withUnsafeMutableBufferPointer { out in
            nonisolated(unsafe) let out = out
            DispatchQueue.concurrentPerform(iterations: workers) { worker in
                var i = worker
                while i < checks.count {
                    let check = checks[i]
                    out[i] = check.key?.isValidSignature(check.signature, for: check.message) ?? false
                    i += workers
                }
            }
        }
        return results
    }

    /// Whether `check` holds for `key`: its precomputed result when it was checked against
    /// that key, else verified now.
    static func isValid(_ check: SignatureCheck, _ precomputed: Bool, key: PublicKey) -> Bool {
        check.key == key ? precomputed : key.isValidSignature(check.signature, for: check.message)
    }

    /// Checks block `entry` against the configuration `config` of epoch `epoch`, the one in
    /// force at its height.
    func checkBlock(_ entry: LedgerEntry, tip: ChainTip, checks: [SignatureCheck], results: [Bool],
                    config: ClusterConfig, epoch: UInt64) -> AuditProblem? {
        let height = entry.block.height
        do {
            _ = try tip.checkLinkage(entry, cluster: config.clusterID)
            try ChainTip.checkViews(entry, config: config, epoch: epoch)
        } catch {
            return AuditProblem(height: error.height, record: error.record, reason: error.reason)
        }
        for (check, valid) in zip(checks, results) where check.record.hasPrefix("request") && !valid {
            return AuditProblem(height: height, record: check.record, reason: "client signature is invalid")
        }
        // The commit certificate: known validators, each once, valid signatures, a quorum.
        let certificateChecks = zip(checks, results).filter { $0.0.record == "commit certificate" }
        let byReplica = Dictionary(zip(entry.certificate.votes.map(\.replica), certificateChecks), uniquingKeysWith: { a, _ in a })
        let certificate = entry.certificate
        return Self.quorumProblem(certificate.votes, config: config, height: height, record: "commit certificate",
                                  epoch: "epoch \(epoch)", invalid: " for view \(certificate.view), height \(height) and this block",
                                  message: { CommitCertificate.signedMessage(cluster: config.clusterID, view: certificate.view,
                                                                             height: height, blockHash: certificate.blockHash,
                                                                             replica: $0) },
                                  isValid: { vote, key, bytes in
                                      guard let (check, precomputed) = byReplica[vote.replica], check.message == bytes else {
                                          return key.isValidSignature(vote.signature, for: bytes)
                                      }
                                      return Self.isValid(check, precomputed, key: key)
                                  })
    }

    /// A certificate's votes under the one quorum rule (`[Vote].checkQuorum`), its failure
    /// told as the audit tells it.
    static func quorumProblem(_ votes: [Vote], config: ClusterConfig, height: Height, record: String, epoch: String,
                              invalid: String, message: (ReplicaID) -> [UInt8],
                              isValid: (Vote, PublicKey, [UInt8]) -> Bool) -> AuditProblem? {
        do {
            try votes.checkQuorum(config: config, message: message, isValid: isValid)
            return nil
        } catch {
            let reason: String
            switch error {
            case let .unknownSigner(id): reason = "signer \(id) is not a validator of \(epoch)"
            case let .duplicateSigner(id): reason = "signer \(id) appears twice"
            case let .invalidSignature(id): reason = "signature of replica \(id) does not verify\(invalid)"
            case let .tooFewSigners(have, need): reason = "\(have) distinct signers, quorum is \(need)"
            }
            return AuditProblem(height: height, record: record, reason: reason)
        }
    }

    /// Checks an execution certificate for the block at `height` (hash `blockHash`), whose
    /// replayed state root is `stateRoot`.
    func checkExecution(_ certificate: ExecutionCertificate, at height: Height, blockHash: Digest, stateRoot: Digest,
                        config: ClusterConfig, checks: [SignatureCheck] = [], results: [Bool] = []) -> AuditProblem? {
        guard height % config.parameters.checkpointInterval == 0 else {
            return AuditProblem(height: height, record: "execution certificate",
                                reason: "height \(height) is not a checkpoint height (a multiple of checkpointInterval \(config.parameters.checkpointInterval))")
        }
        guard certificate.blockHash == blockHash else {
            return AuditProblem(height: height, record: "execution certificate", reason: "names a different block")
        }
        // Checked in parallel with the block's other signatures; found by its exact message.
        if let problem = Self.quorumProblem(
            certificate.votes, config: config, height: height, record: "execution certificate", epoch: "the block's epoch", invalid: "",
            message: { ExecutionCertificate.signedMessage(cluster: config.clusterID, height: height, blockHash: certificate.blockHash,
                                                          stateRoot: certificate.stateRoot, replica: $0) },
            isValid: { vote, key, message in
                let checked = zip(checks, results).first { $0.0.signature == vote.signature && $0.0.message == message && $0.0.key == key }
                return checked?.1 ?? key.isValidSignature(vote.signature, for: message)
            }) {
            return problem
        }
        guard certificate.stateRoot == stateRoot else {
            return AuditProblem(height: height, record: "execution certificate",
                                reason: "certified state root \(certificate.stateRoot.short) differs from the replayed state root \(stateRoot.short)")
        }
        return nil
    }
}

/// One audit's replay of the ledger, in batches: the signatures of the next batch are verified
/// on worker threads while this thread checks and replays the batch before it. The offline
/// audit knows every execution certificate up front; `bulwark-verify follow` feeds blocks and
/// certificates as they land (`check`, `certify`), so the state roots of recent checkpoint
/// heights are kept until their certificates arrive.
final class AuditReplay {
    let audit: LedgerAudit
    let history: FileKeyHistory
    let certificates: [Height: [ExecutionCertificate]]
    var state: KeyValueState
    var tip = ChainTip.genesis
    var report = AuditReport()
    var failure: AuditProblem?
    /// The configuration of the newest replayed block's epoch (which certifies it).
    var lastBlockConfig: ClusterConfig
    var batch: [LedgerEntry] = []
    var inFlight: (entries: [LedgerEntry], checks: [LedgerAudit.SignatureCheck], results: LedgerAudit.PendingResults)?
    /// Replayed state roots of checkpoint heights not yet certified (following a live ledger
    /// only), at most `pendingRootsMax` of the newest.
    var pendingRoots: [Height: (blockHash: Digest, stateRoot: Digest, config: ClusterConfig)] = [:]
    let keepsPendingRoots: Bool
    static let pendingRootsMax = 1024

    init(audit: LedgerAudit, history: FileKeyHistory, certificates: [ExecutionCertificate], keepsPendingRoots: Bool = false) {
        self.audit = audit
        self.history = history
        self.certificates = Dictionary(grouping: certificates, by: \.height)
        self.keepsPendingRoots = keepsPendingRoots
        state = KeyValueState(genesis: audit.config, history: history)
        report.epochs = [EpochRecord(epoch: 0, firstHeight: 1, config: audit.config)]
        lastBlockConfig = audit.config
    }

    /// Reads every entry of `reader` and checks it; stops at the first problem.
    func run(_ reader: BlockLogReader) {
        do {
            try reader.forEachEntry { entry in
                batch.append(entry)
                if batch.count == audit.batchBlocks {
                    flush(total: reader.height)
                    if let failure { throw failure }
                }
            }
            flush(total: reader.height)
            flush(total: reader.height)
        } catch let problem as AuditProblem {
            inFlight?.results.wait()
            failure = problem
        } catch {
            inFlight?.results.wait()
            failure = AuditProblem(height: report.heights + 1, record: "block", reason: "\(error)")
        }
    }

    /// Checks `entries` (the next blocks) now, without pipelining.
    func check(_ entries: [LedgerEntry]) {
        guard failure == nil, !entries.isEmpty else { return }
        let checks = audit.signatureChecks(entries, certificates: certificates, governance: state.governance)
        process(entries, checks, LedgerAudit.verifyInParallel(checks, threads: audit.threads), total: nil)
    }

    /// Checks an execution certificate stored after its block (possibly after later blocks).
    func certify(_ certificate: ExecutionCertificate) {
        guard failure == nil else { return }
        let height = certificate.height
        let known = pendingRoots[height]
            ?? (height == tip.height && height > 0 ? (tip.blockHash, state.stateRoot, lastBlockConfig) : nil)
        guard let known else {
            let reason = height > tip.height || height == 0
                ? "names height \(height), which is not in the ledger before it"
                : "height \(height) is not a checkpoint height, or arrived after \(Self.pendingRootsMax) later checkpoints (its state is no longer held)"
            failure = AuditProblem(height: height, record: "execution certificate", reason: reason)
            return
        }
        if let problem = audit.checkExecution(certificate, at: height, blockHash: known.blockHash, stateRoot: known.stateRoot,
                                              config: known.config) {
            failure = problem
            return
        }
        report.signaturesChecked += certificate.votes.count
        certified(height, known.stateRoot)
    }

    /// The report: the first problem, or damage and torn tails the reader met past the last
    /// good record.
    func finish(_ reader: BlockLogReader) -> AuditReport {
        report.tip = tip
        report.finalStateRoot = state.stateRoot
        let damage = AuditProblem.damage(of: reader)
        if let failure {
            report.problem = failure
        } else if audit.acceptsDamagedTail {
            report.damageIgnored = damage
        } else {
            report.problem = damage
        }
        return report
    }

    /// Starts verifying the batch gathered and checks the one before it.
    func flush(total: Height) {
        let next: (entries: [LedgerEntry], checks: [LedgerAudit.SignatureCheck], results: LedgerAudit.PendingResults)?
        if batch.isEmpty {
            next = nil
        } else {
            // The state is that before the previous batch, still being checked: its schedule is
            // as far as is known (see `signatureChecks`).
            let checks = audit.signatureChecks(batch, certificates: certificates, governance: state.governance)
            next = (batch, checks, audit.verifyInBackground(checks))
            batch = []
        }
        if let previous = inFlight { process(previous.entries, previous.checks, previous.results.wait(), total: total) }
        inFlight = next
    }

    func process(_ entries: [LedgerEntry], _ checks: [LedgerAudit.SignatureCheck], _ valid: [Bool], total: Height?) {
        guard failure == nil else { return }
        report.signaturesChecked += checks.count
        var index = 0
        for entry in entries {
            let ownChecks = Array(checks[index...].prefix { $0.height == entry.block.height })
            let results = Array(valid[index..<(index + ownChecks.count)])
            index += ownChecks.count
            if let problem = replay(entry, checks: ownChecks, results: results) {
                failure = problem
                return
            }
        }
        if let total { audit.progress?(report.heights, total) }
    }

    /// Checks one block and its execution certificates, and executes it.
    func replay(_ entry: LedgerEntry, checks: [LedgerAudit.SignatureCheck], results: [Bool]) -> AuditProblem? {
        let height = entry.block.height
        // The configuration in force at this height; the block may end its epoch.
        let config = state.governance.config
        let epoch = state.governance.epoch
        if let problem = audit.checkBlock(entry, tip: tip, checks: checks, results: results, config: config, epoch: epoch) {
            return problem
        }
        tip = tip.appending(entry.block.header, hash: entry.block.hash)
        let scheduledBefore = state.governance.scheduled
        do {
            let outcomes = try state.execute(entry.block)
            try history.flush()
            for (request, outcome) in zip(entry.block.requests, outcomes) {
                guard case let .executed(result) = outcome else { continue }
                if case let .permissionDenied(denial) = result {
                    report.deniedRequests += 1
                    if report.denied.count < AuditReport.deniedListedMax {
                        report.denied.append(DeniedRequest(height: height, client: request.client, requestID: request.requestID,
                                                           denial: denial))
                    }
                }
                if case let .policyApproved(progress) = result, progress.applied != nil { report.policyChanges += 1 }
            }
        } catch {
            return AuditProblem(height: height, record: "state", reason: "cannot replay the block: \(error)")
        }
        if state.governance.epoch != epoch, let change = scheduledBefore {
            report.epochs[report.epochs.count - 1].lastHeight = height
            report.epochs.append(EpochRecord(epoch: state.governance.epoch, firstHeight: state.governance.firstHeight,
                                             config: state.governance.config, proposal: change.id,
                                             approvers: change.approvals.map(\.admin)))
        }
        lastBlockConfig = config
        report.heights = height
        report.requests += entry.block.requests.count
        report.commitCertificates += 1
        for certificate in certificates[height] ?? [] {
            let root = state.stateRoot
            if let problem = audit.checkExecution(certificate, at: height, blockHash: tip.blockHash, stateRoot: root,
                                                  config: config, checks: checks, results: results) { return problem }
            certified(height, root)
        }
        if keepsPendingRoots, height % config.parameters.checkpointInterval == 0 {
            pendingRoots[height] = (tip.blockHash, state.stateRoot, config)
            if pendingRoots.count > Self.pendingRootsMax, let oldest = pendingRoots.keys.min() { pendingRoots[oldest] = nil }
        }
        return nil
    }

    func certified(_ height: Height, _ stateRoot: Digest) {
        report.executionCertificates += 1
        if height >= report.certifiedHeight {
            report.certifiedHeight = height
            report.certifiedStateRoot = stateRoot
        }
        pendingRoots[height] = nil
    }
}
