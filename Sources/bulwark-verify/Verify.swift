import ArgumentParser
import BulwarkCore
import BulwarkStateMachine
import BulwarkStorage
import BulwarkVerify
import Foundation

@main
struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bulwark-verify",
        abstract: "Audit Bulwark ledgers offline, trusting no replica.",
        discussion: "Exit status 0 means everything checked holds; anything else names the first problem.",
        subcommands: [LogCommand.self, Follow.self, Compare.self, DigestCommand.self, Consistency.self, Inclusion.self,
                      ProofCommand.self, EpochsCommand.self]
    )
}

struct Output: ParsableArguments {
    @Flag(help: "Print a machine-readable JSON report instead of text.") var json = false
}

/// Whether a command may use the intact prefix of a damaged ledger.
struct DamagePolicy: ParsableArguments {
    @Flag(help: ArgumentHelp("Use the intact blocks before any damage instead of refusing a damaged ledger.",
                             discussion: "Without it, a command that reads a damaged ledger fails, naming the first damaged height, the record, the segment and the byte offset."))
    var prefix = false
}

/// Prints `object` as one JSON document.
func printJSON(_ object: [String: Any]) {
    let data = try! JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
    print(String(decoding: data, as: UTF8.self))
}

func loadConfig(_ path: String) throws -> ClusterConfig {
    do { return try ClusterConfig.load(from: path) } catch {
        throw ValidationError("\(error)")
    }
}

func fail(_ message: String) -> ExitCode {
    FileHandle.standardError.write(Data("error: \(message)\n".utf8))
    return ExitCode.failure
}

func problemJSON(_ problem: AuditProblem?) -> Any {
    guard let problem else { return NSNull() }
    return ["height": problem.height, "record": problem.record, "reason": problem.reason] as [String: Any]
}

/// How far the replayed state is certified, in one sentence (SPEC.md §11).
func certifiedSentence(_ report: AuditReport) -> String {
    let n = report.heights
    let h = report.certifiedHeight
    if h == 0 {
        return n == 0 ? "no blocks" : "state not certified at any height: no execution certificate covers blocks 1…\(n)"
    }
    if h == n { return "state certified through height \(h)" }
    return "state certified through height \(h); blocks \(h + 1)…\(n) not covered by an execution certificate"
}

/// One epoch of an audit, as JSON.
func epochJSON(_ record: EpochRecord) -> [String: Any] {
    [
        "epoch": record.epoch, "firstHeight": record.firstHeight, "lastHeight": record.lastHeight.map { $0 as Any } ?? NSNull(),
        "configHash": record.config.hash.hex, "proposal": record.proposal?.hex ?? NSNull(),
        "approvedBy": record.approvers.map(Int.init), "adminThreshold": record.config.adminThreshold,
        "validators": record.config.validators.map { v -> [String: Any] in
            ["id": Int(v.id), "publicKey": v.publicKey.hex, "replicaAddress": v.replicaAddress.description,
             "clientAddress": v.clientAddress.description, "httpAddress": v.httpAddress.description]
        },
    ]
}

struct EpochsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "epochs",
        abstract: "List every configuration epoch of a replica's ledger, from genesis, with the approvals that made each.",
        discussion: """
            Needs only the genesis cluster.json: the ledger is audited from the start as `log`             audits it, which is how each change and its admin approvals are checked, so the             list is trustworthy only when the audit passes (the exit status says so).
            """
    )

    @Argument(help: ArgumentHelp("A replica's block log directory (its data directory's blocks/ folder).", valueName: "DIR"))
    var directory: String
    @Option(help: ArgumentHelp("The cluster's genesis configuration (cluster.json).", valueName: "FILE")) var cluster: String
    @Option(help: "Threads for signature checks (default: all cores).") var threads = ProcessInfo.processInfo.activeProcessorCount
    @OptionGroup var damagePolicy: DamagePolicy
    @OptionGroup var output: Output

    func validate() throws {
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
    }

    func run() throws {
        var audit = LedgerAudit(config: try loadConfig(cluster), threads: threads)
        audit.acceptsDamagedTail = damagePolicy.prefix
        let report = audit.audit(directory: resolveBlocks(directory))
        if output.json {
            printJSON(["ok": report.passed, "heights": report.heights, "epochs": report.epochs.map(epochJSON),
                       "problem": problemJSON(report.problem)])
        } else {
            for record in report.epochs {
                let span = record.lastHeight.map { "heights \(record.firstHeight)…\($0)" } ?? "from height \(record.firstHeight) (current)"
                let approval = record.proposal.map { "proposal \($0.short)…, approved by admins \(record.approvers.map(String.init).joined(separator: ", "))" } ?? "cluster.json"
                print("epoch \(record.epoch): \(span); \(record.config.n) validators, quorum \(record.config.quorum); configuration \(record.config.hash.hex); \(approval)")
                for v in record.config.validators {
                    print("  replica \(v.id)  \(v.publicKey.short)…  replicas \(v.replicaAddress)  clients \(v.clientAddress)")
                }
            }
            if let problem = report.problem {
                print("FAILED at height \(problem.height), \(problem.record): \(problem.reason) (epochs listed up to it)")
            } else {
                print("ok: \(report.heights) blocks audited from genesis")
            }
        }
        if !report.passed { throw ExitCode.failure }
    }
}

struct LogCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "log",
        abstract: "Verify one replica's ledger from genesis.",
        discussion: """
            Checks, at every height (SPEC.md §11): record checksums; the hash chain and \
            historyRoot; txRoot against the requests; the proposer is the primary of the block's \
            view; every client signature; the commit certificate (a quorum of distinct validators \
            of this cluster, valid signatures over this view, height and block, a view no lower \
            than the block's); every execution certificate; and a full replay of the state \
            machine whose state roots must equal the certified ones. Reports how far the state \
            is certified. A damaged ledger fails unless --prefix is given.
            """
    )

    @Argument(help: ArgumentHelp("A replica's block log directory (its data directory's blocks/ folder).", valueName: "DIR"))
    var directory: String
    @Option(help: ArgumentHelp("The cluster's public configuration.", valueName: "FILE")) var cluster: String
    @Option(help: "Threads for signature checks (default: all cores).") var threads = ProcessInfo.processInfo.activeProcessorCount
    @Flag(name: .customLong("require-certified"),
          help: "Fail when more than checkpointInterval blocks at the end are not covered by an execution certificate.")
    var requireCertified = false
    @Flag(help: "No progress line.") var quiet = false
    @OptionGroup var damagePolicy: DamagePolicy
    @OptionGroup var output: Output

    func validate() throws {
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
    }

    func run() throws {
        let config = try loadConfig(cluster)
        var audit = LedgerAudit(config: config, threads: threads)
        let showProgress = !quiet && !output.json
        var lastPrint = ContinuousClock.now
        if showProgress {
            audit.progress = { done, total in
                guard ContinuousClock.now - lastPrint > .seconds(1) else { return }
                lastPrint = ContinuousClock.now
                FileHandle.standardError.write(Data("verified \(done) of \(total) blocks\n".utf8))
            }
        }
        audit.acceptsDamagedTail = damagePolicy.prefix
        let report = audit.audit(directory: resolvedDirectory)
        // The epoch in force at the end decides the checkpoint interval.
        let interval = report.epochs.last?.config.parameters.checkpointInterval ?? config.parameters.checkpointInterval
        let uncertified = report.problem == nil && requireCertified && report.uncertifiedBlocks > interval
        if output.json {
            printJSON([
                "ok": report.passed && !uncertified, "heights": report.heights, "requests": report.requests,
                "commitCertificates": report.commitCertificates, "executionCertificates": report.executionCertificates,
                "signatures": report.signaturesChecked, "elapsedSeconds": report.elapsedSeconds,
                "blocksPerSecond": report.blocksPerSecond, "requestsPerSecond": report.requestsPerSecond,
                "digest": report.heights > 0 ? report.digest.description : NSNull(),
                "certifiedHeight": report.certifiedHeight, "certifiedStateRoot": report.certifiedStateRoot?.hex ?? NSNull(),
                "uncertifiedBlocks": report.uncertifiedBlocks, "replayedStateRoot": report.finalStateRoot?.hex ?? NSNull(),
                "damageIgnored": report.damageIgnored.map { problemJSON($0) } ?? NSNull(),
                "problem": problemJSON(report.problem), "epochs": report.epochs.map(epochJSON),
                "policyChanges": report.policyChanges, "deniedRequests": report.deniedRequests,
                "denied": report.denied.map { denied -> [String: Any] in
                    ["height": denied.height, "client": denied.client.hex, "requestId": denied.requestID,
                     "denial": denied.denial.description]
                },
            ])
        } else if let problem = report.problem {
            print("FAILED at height \(problem.height), \(problem.record): \(problem.reason)")
            print("verified before it: \(report.heights) blocks, \(report.requests) requests")
        } else {
            if let damage = report.damageIgnored {
                print("warning: ledger damaged at height \(damage.height), \(damage.record): \(damage.reason); audited the \(report.heights) intact blocks before it (--prefix)")
            }
            print("ok: \(report.heights) blocks, \(report.requests) requests, \(report.commitCertificates) commit certificates, \(report.executionCertificates) execution certificates, \(report.signaturesChecked) signatures")
            print("ledger digest \(report.digest)")
            if let current = report.epochs.last, current.epoch > 0 {
                print("\(report.epochs.count) epochs, each change checked against its approvals; epoch \(current.epoch) since height \(current.firstHeight) (\(current.config.n) validators, configuration \(current.config.hash.short)…)")
            }
            if report.policyChanges > 0 || report.deniedRequests > 0 {
                print("client policy: \(report.policyChanges) changes applied; \(report.deniedRequests) requests denied, each re-executed under the policy in force at its height")
                if !quiet {
                    for denied in report.denied.prefix(10) {
                        print("  height \(denied.height): client \(denied.client.short)… request \(denied.requestID): \(denied.denial)")
                    }
                    if report.deniedRequests > 10 { print("  … (--json lists the first \(AuditReport.deniedListedMax))") }
                }
            }
            print(certifiedSentence(report))
            if let root = report.certifiedStateRoot { print("certified state root \(root.hex) (height \(report.certifiedHeight))") }
            if report.uncertifiedBlocks > 0, let root = report.finalStateRoot {
                print("replayed state root \(root.hex) (height \(report.heights), not certified)")
            }
            print(String(format: "%.2f s, %.0f blocks/s, %.0f requests/s, %d threads", report.elapsedSeconds,
                         report.blocksPerSecond, report.requestsPerSecond, threads))
            if uncertified {
                print("FAILED: \(report.uncertifiedBlocks) blocks at the end are not covered by an execution certificate, more than checkpointInterval (\(interval)) (--require-certified)")
            }
        }
        if !report.passed || uncertified { throw ExitCode.failure }
    }

    /// Accepts a data directory holding `blocks/` as well as the blocks directory itself.
    var resolvedDirectory: String { resolveBlocks(directory) }
}

func resolveBlocks(_ directory: String) -> String {
    let nested = PathName.join(directory, "blocks")
    var isDirectory: ObjCBool = false
    return FileManager.default.fileExists(atPath: nested, isDirectory: &isDirectory) && isDirectory.boolValue ? nested : directory
}

/// The log in `directory`. A damaged one is refused (naming where) unless `policy` allows
/// its intact prefix, in which case a warning names the damage.
func openReader(_ directory: String, _ policy: DamagePolicy) throws -> BlockLogReader {
    let path = resolveBlocks(directory)
    guard FileManager.default.fileExists(atPath: path) else { throw fail("\(path) does not exist") }
    let reader: BlockLogReader
    do { reader = try BlockLogReader(directory: path) } catch { throw fail("\(error)") }
    if let damage = AuditProblem.damage(of: reader) {
        guard policy.prefix else {
            throw fail("the ledger in \(path) is damaged at \(damage); --prefix uses the \(reader.height) intact blocks before it")
        }
        FileHandle.standardError.write(Data("warning: the ledger in \(path) is damaged at \(damage); using the \(reader.height) intact blocks before it (--prefix)\n".utf8))
    }
    return reader
}

struct Compare: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check that several replicas' ledgers agree at every common height.",
        discussion: "On a divergence, reports the first height and, for each side, whether its commit certificate is valid. A ledger with no blocks agrees with nothing: it fails, named."
    )

    @Argument(help: ArgumentHelp("Two or more block log directories.", valueName: "DIR")) var directories: [String]
    @Option(help: ArgumentHelp("The cluster's public configuration.", valueName: "FILE")) var cluster: String
    @OptionGroup var damagePolicy: DamagePolicy
    @OptionGroup var output: Output

    func validate() throws {
        guard directories.count >= 2 else { throw ValidationError("give at least two directories to compare") }
    }

    func run() throws {
        let config = try loadConfig(cluster)
        let readers = try directories.map { try openReader($0, damagePolicy) }
        let common = readers.map(\.height).min() ?? 0
        // An empty ledger has no common height with anything: "agree at 1...0" compared nothing.
        let empty = zip(directories, readers).filter { $0.1.height == 0 }.map(\.0)
        var divergence: (height: Height, sides: [(String, Digest, String)])?
        if common > 0 {
            for height in 1...common {
                let hashes = readers.map { $0.blockHash(at: height)! }
                guard Set(hashes).count > 1 else { continue }
                // The ledgers agree below this height: replaying that prefix gives the epoch in
                // force here, whose validators judge each side's certificate.
                var state = KeyValueState(genesis: config)
                for below in stride(from: Height(1), to: height, by: 1) { _ = try state.execute(try readers[0].entry(at: below).block) }
                let governance = state.governance
                let sides = zip(directories, readers).map { directory, reader -> (String, Digest, String) in
                    let verdict: String
                    do {
                        let entry = try reader.entry(at: height)
                        try ChainTip.checkViews(entry, config: governance.config, epoch: governance.epoch)
                        try entry.certificate.verify(config: governance.config)
                        verdict = "valid commit certificate"
                    } catch {
                        verdict = "invalid commit certificate: \(error)"
                    }
                    return (directory, reader.blockHash(at: height)!, verdict)
                }
                divergence = (height, sides)
                break
            }
        }
        if output.json {
            printJSON([
                "ok": divergence == nil && empty.isEmpty, "commonHeight": common, "empty": empty,
                "heights": Dictionary(uniqueKeysWithValues: zip(directories, readers.map(\.height))),
                "divergence": divergence.map { d in
                    ["height": d.height,
                     "sides": d.sides.map { ["directory": $0.0, "blockHash": $0.1.hex, "certificate": $0.2] }] as [String: Any]
                } ?? NSNull(),
            ])
        } else if let divergence {
            print("DIVERGED at height \(divergence.height):")
            for side in divergence.sides { print("  \(side.0): block \(side.1.short)…, \(side.2)") }
        } else if !empty.isEmpty {
            print("NOTHING COMPARED: \(empty.joined(separator: ", ")) \(empty.count == 1 ? "holds" : "hold") no blocks; heights \(readers.map { String($0.height) }.joined(separator: ", "))")
        } else {
            print("ok: \(readers.count) ledgers agree at every common height (1...\(common)); heights \(readers.map { String($0.height) }.joined(separator: ", "))")
        }
        if divergence != nil || !empty.isEmpty { throw ExitCode.failure }
    }
}

struct DigestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "digest",
        abstract: "Print a ledger digest to pin: height, last block hash, and the root over every block.",
        discussion: "The digest is written HEIGHT:ROOT; `consistency` and `inclusion` take it."
    )

    @Argument(help: ArgumentHelp("A block log directory.", valueName: "DIR")) var directory: String
    @Option(help: "Digest of the first HEIGHT blocks instead of all.") var height: Height?
    @OptionGroup var damagePolicy: DamagePolicy
    @OptionGroup var output: Output

    func run() throws {
        let reader = try openReader(directory, damagePolicy)
        let at = height ?? reader.height
        guard at >= 1, at <= reader.height else { throw fail("the log holds heights 1...\(reader.height), not \(at)") }
        let digest = LedgerDigest.of(reader, height: at)
        if output.json {
            printJSON(["height": at, "blockHash": reader.blockHash(at: at)!.hex, "historyRoot": digest.root.hex,
                       "digest": digest.description])
        } else {
            print("height \(at)")
            print("block \(reader.blockHash(at: at)!.hex)")
            print("digest \(digest)")
        }
    }
}

func parseDigest(_ text: String, _ name: String) throws -> LedgerDigest {
    guard let digest = LedgerDigest(parsing: text) else { throw ValidationError("\(name) must look like HEIGHT:ROOTHEX") }
    return digest
}

func readProof(_ path: String) throws -> [Digest] {
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw fail("cannot read \(path)") }
    var out: [Digest] = []
    for line in text.split(separator: "\n") where !line.trimmingCharacters(in: .whitespaces).isEmpty {
        guard let digest = Digest(hex: line.trimmingCharacters(in: .whitespaces)) else {
            throw fail("\(path): '\(line)' is not a 64-digit hex hash")
        }
        out.append(digest)
    }
    return out
}

struct Consistency: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check that the ledger with digest OLD is a prefix of the one with digest NEW (RFC 6962).",
        discussion: "With --log, computes the proof from a log holding NEW (and can write it with --write-proof); with --proof, checks a proof file (one hash per line) against the two digests alone."
    )

    @Argument(help: "The older digest, HEIGHT:ROOT.") var old: String
    @Argument(help: "The newer digest, HEIGHT:ROOT.") var new: String
    @Option(help: ArgumentHelp("A block log holding the newer ledger.", valueName: "DIR")) var log: String?
    @Option(help: ArgumentHelp("A proof file to check.", valueName: "FILE")) var proof: String?
    @Option(name: .customLong("write-proof"), help: ArgumentHelp("Write the computed proof here.", valueName: "FILE"))
    var writeProof: String?
    @OptionGroup var damagePolicy: DamagePolicy
    @OptionGroup var output: Output

    func validate() throws {
        guard (log == nil) != (proof == nil) else { throw ValidationError("give exactly one of --log DIR or --proof FILE") }
    }

    func run() throws {
        let oldDigest = try parseDigest(old, "OLD")
        let newDigest = try parseDigest(new, "NEW")
        var hashes: [Digest]
        var verdict: String?
        if let log {
            let reader = try openReader(log, damagePolicy)
            do { hashes = try LedgerProofs.consistency(from: reader, old: oldDigest, new: newDigest) } catch {
                hashes = []
                verdict = "\(error)"
            }
        } else {
            hashes = try readProof(proof!)
        }
        if verdict == nil {
            do { try LedgerProofs.verifyConsistency(old: oldDigest, new: newDigest, proof: hashes) } catch { verdict = "\(error)" }
        }
        if let writeProof, verdict == nil {
            try (hashes.map(\.hex).joined(separator: "\n") + "\n").write(toFile: writeProof, atomically: true, encoding: .utf8)
        }
        if output.json {
            printJSON(["ok": verdict == nil, "old": oldDigest.description, "new": newDigest.description,
                       "proof": hashes.map(\.hex), "problem": verdict ?? NSNull()])
        } else {
            print(verdict.map { "NOT CONSISTENT: \($0)" } ?? "ok: ledger \(oldDigest) is a prefix of \(newDigest) (\(hashes.count) proof hashes)")
        }
        if verdict != nil { throw ExitCode.failure }
    }
}

struct Inclusion: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check that block HEIGHT is in the ledger with DIGEST (RFC 6962).",
        discussion: "With --log, computes the proof from the log; with --proof and --block-hash, checks a proof file against the digest alone."
    )

    @Argument(help: "The block's height.") var height: Height
    @Argument(help: "The ledger digest, HEIGHT:ROOT.") var digest: String
    @Option(help: ArgumentHelp("A block log holding the ledger.", valueName: "DIR")) var log: String?
    @Option(help: ArgumentHelp("A proof file to check.", valueName: "FILE")) var proof: String?
    @Option(name: .customLong("block-hash"), help: "The block's hash, with --proof.") var blockHash: String?
    @OptionGroup var damagePolicy: DamagePolicy
    @OptionGroup var output: Output

    func validate() throws {
        guard (log == nil) != (proof == nil) else { throw ValidationError("give exactly one of --log DIR or --proof FILE") }
        if proof != nil, blockHash.flatMap({ Digest(hex: $0) }) == nil {
            throw ValidationError("--proof needs --block-hash HEX")
        }
    }

    func run() throws {
        let ledger = try parseDigest(digest, "DIGEST")
        var hashes: [Digest] = []
        var hash = blockHash.flatMap { Digest(hex: $0) } ?? .zero
        var verdict: String?
        if let log {
            let reader = try openReader(log, damagePolicy)
            do { (hash, hashes) = try LedgerProofs.inclusion(from: reader, height: height, digest: ledger) } catch {
                verdict = "\(error)"
            }
        } else {
            hashes = try readProof(proof!)
        }
        if verdict == nil {
            do { try LedgerProofs.verifyInclusion(height: height, blockHash: hash, digest: ledger, proof: hashes) } catch {
                verdict = "\(error)"
            }
        }
        if output.json {
            printJSON(["ok": verdict == nil, "height": height, "blockHash": hash.hex, "digest": ledger.description,
                       "proof": hashes.map(\.hex), "problem": verdict ?? NSNull()])
        } else {
            print(verdict.map { "NOT INCLUDED: \($0)" } ?? "ok: block \(height) (\(hash.short)…) is in ledger \(ledger)")
        }
        if verdict != nil { throw ExitCode.failure }
    }
}

struct ProofCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "proof",
        abstract: "Check a key proof written by `bulwark prove`: the execution certificate and the key's value under its state root."
    )

    @Argument(help: ArgumentHelp("The proof file.", valueName: "FILE")) var file: String
    @Option(help: ArgumentHelp("The cluster's public configuration.", valueName: "FILE")) var cluster: String
    @OptionGroup var output: Output

    func run() throws {
        let config = try loadConfig(cluster)
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { throw fail("cannot read \(file)") }
        var proven: KeyProof?
        var verdict: String?
        do { proven = try KeyProofBundle(fileText: text).verify(config: config) } catch { verdict = "\(error)" }
        let key = proven.map { String(decoding: $0.key, as: UTF8.self) } ?? ""
        let value = proven?.value.map { String(decoding: $0, as: UTF8.self) }
        if output.json {
            printJSON(["ok": verdict == nil, "key": key, "value": value ?? NSNull(), "version": proven?.version ?? 0,
                       "height": proven?.height ?? 0, "problem": verdict ?? NSNull()])
        } else if let proven {
            print("ok: at height \(proven.height), key '\(key)' " + (value.map { "= '\($0)' (version \(proven.version))" } ?? "is absent"))
        } else {
            print("INVALID: \(verdict!)")
        }
        if verdict != nil { throw ExitCode.failure }
    }
}

struct Follow: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Audit a live replica's ledger continuously, block by block as it lands.",
        discussion: """
            Tails DIR (a replica's data directory or its blocks/ folder) and checks every block \
            and execution certificate as `log` does, as soon as it is written, coping with the \
            segment being written and with new segments. Prints the advancing ledger digest \
            (with --json, one JSON object per line). Fails loudly, with a non-zero exit, on the \
            first bad block or damaged record; runs until interrupted, or until --until-height \
            is verified.
            """
    )

    @Argument(help: ArgumentHelp("A replica's data directory or its blocks/ folder.", valueName: "DIR")) var directory: String
    @Option(help: ArgumentHelp("The cluster's public configuration.", valueName: "FILE")) var cluster: String
    @Option(name: .customLong("interval-ms"), help: "How often to look for new records, in milliseconds.") var intervalMs = 200
    @Option(name: .customLong("until-height"), help: "Stop with exit status 0 once this height is verified.")
    var untilHeight: Height?
    @Option(help: "Threads for signature checks (default: all cores).") var threads = ProcessInfo.processInfo.activeProcessorCount
    @OptionGroup var output: Output

    func validate() throws {
        guard (1...60_000).contains(intervalMs) else { throw ValidationError("--interval-ms must be between 1 and 60000") }
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
        if let untilHeight, untilHeight < 1 { throw ValidationError("--until-height must be at least 1") }
    }

    func run() throws {
        let config = try loadConfig(cluster)
        let parent = (directory as NSString).standardizingPath
        guard FileManager.default.fileExists(atPath: parent) else { throw fail("\(directory) does not exist") }
        // A data directory whose blocks/ folder the replica has not made yet is followed too.
        let blocks = PathName.lastComponent(of: parent) == "blocks" || isBlockLog(parent)
            ? parent : PathName.join(parent, "blocks")
        let follower: LedgerFollower
        do { follower = try LedgerFollower(config: config, directory: blocks, threads: threads) } catch {
            throw fail("cannot start following \(blocks): \(error)")
        }
        if !output.json { emit("following \(blocks)") }
        while true {
            if follower.poll() { announce(follower.report) }
            let report = follower.report
            if let problem = report.problem {
                if output.json {
                    printLine(["ok": false, "height": report.heights, "problem": problemJSON(problem)])
                } else {
                    emit("FAILED at height \(problem.height), \(problem.record): \(problem.reason)")
                    emit("verified before it: \(report.heights) blocks, ledger digest \(report.digest)")
                }
                throw ExitCode.failure
            }
            if let untilHeight, report.heights >= untilHeight { return }
            usleep(useconds_t(intervalMs) * 1000)
        }
    }

    func isBlockLog(_ path: String) -> Bool {
        ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).contains { $0.hasPrefix("segment-") }
    }

    func announce(_ report: AuditReport) {
        if output.json {
            printLine(["ok": true, "height": report.heights, "digest": report.digest.description,
                       "certifiedHeight": report.certifiedHeight, "certifiedStateRoot": report.certifiedStateRoot?.hex ?? NSNull(),
                       "requests": report.requests])
        } else {
            emit("verified through height \(report.heights): ledger digest \(report.digest); \(certifiedSentence(report))")
        }
    }

    /// One JSON object on one line (JSON Lines).
    func printLine(_ object: [String: Any]) {
        let data = try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        emit(String(decoding: data, as: UTF8.self))
    }

    /// One line, written at once (not held in a buffer), so a pipe sees each advance.
    func emit(_ line: String) {
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }
}
