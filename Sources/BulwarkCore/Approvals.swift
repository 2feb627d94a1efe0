/// The one approval mechanism admins use (SPEC.md §18.3, §19.3), for configuration changes
/// and policy changes alike: an approval counts only when its signer is an admin of the
/// configuration in force and its signature over the change's message is valid; it is
/// recorded in the proposal that message's digest names (an admin counts once, its first
/// signature kept); the proposal completes at the threshold.

/// What an approval is about, for the words its progress is told in.
public protocol ApprovalSubject: Sendable {
    static func describe(_ progress: ApprovalProgress<Self>) -> String
}

/// A configuration change (SPEC.md §18): completing it schedules the epoch's last height.
public enum ConfigChange: ApprovalSubject {
    public static func describe(_ progress: ApprovalProgress<Self>) -> String {
        if let last = progress.completion {
            return "proposal \(progress.id.hex) approved (\(progress.approvals) of \(progress.threshold)); the new configuration takes effect after height \(last)"
        }
        return "proposal \(progress.id.hex): \(progress.approvals) of \(progress.threshold) approvals"
    }
}

/// A policy change (SPEC.md §19): completing it applies it as the policy's next sequence.
public enum PolicyChange: ApprovalSubject {
    public static func describe(_ progress: ApprovalProgress<Self>) -> String {
        if let applied = progress.completion {
            return "policy proposal \(progress.id.hex) approved (\(progress.approvals) of \(progress.threshold)); applied as change \(applied)"
        }
        return "policy proposal \(progress.id.hex): \(progress.approvals) of \(progress.threshold) approvals"
    }
}

/// How far a proposal got.
public struct ApprovalProgress<Subject: ApprovalSubject>: Hashable, Sendable, CustomStringConvertible {
    public var id: Digest
    public var approvals: UInt16
    public var threshold: UInt16
    /// Set when this approval completed the change: the configuration's last height in the
    /// current epoch, or the policy's new sequence.
    public var completion: UInt64?

    public init(id: Digest, approvals: UInt16, threshold: UInt16, completion: UInt64? = nil) {
        self.id = id
        self.approvals = approvals
        self.threshold = threshold
        self.completion = completion
    }

    /// The threshold is reached.
    public var isComplete: Bool { approvals >= threshold }

    func completed(at completion: UInt64) -> Self {
        var done = self
        done.completion = completion
        return done
    }

    public var description: String { Subject.describe(self) }
}

public typealias ConfigProgress = ApprovalProgress<ConfigChange>
public typealias PolicyProgress = ApprovalProgress<PolicyChange>

extension ApprovalProgress where Subject == ConfigChange {
    public init(id: Digest, approvals: UInt16, threshold: UInt16, lastHeight: Height?) {
        self.init(id: id, approvals: approvals, threshold: threshold, completion: lastHeight)
    }

    /// Set when this approval completed the change: the current epoch's last block.
    public var lastHeight: Height? { completion }
}

extension ApprovalProgress where Subject == PolicyChange {
    public init(id: Digest, approvals: UInt16, threshold: UInt16, applied: UInt64?) {
        self.init(id: id, approvals: approvals, threshold: threshold, completion: applied)
    }

    /// Set when this approval applied the change: the policy's new sequence.
    public var applied: UInt64? { completion }
}

extension ApprovalProgress: CanonicalCodable {
    public func encode(to w: inout CanonicalWriter) {
        w.write(id)
        w.write(approvals)
        w.write(threshold)
        w.write(completion != nil)
        if let completion { w.write(completion) }
    }

    public init(from r: inout CanonicalReader) throws(CodecError) {
        id = try r.readDigest("proposal id")
        approvals = try r.readUInt16("approvals")
        threshold = try r.readUInt16("threshold")
        completion = try r.readBool("completion present") ? try r.readUInt64("completion") : nil
    }
}

/// Why an approval does not count.
enum AdminRefusal: Error {
    case notAnAdmin
    case badSignature
}

extension ClusterConfig {
    /// `admin`'s approval over `message`, if `admin` is one of this configuration's admins and
    /// `signature` is valid: the first two checks of every approval.
    func adminApproval(by admin: PublicKey, signature: Signature, over message: [UInt8]) -> Result<ConfigApproval, AdminRefusal> {
        guard let index = admins.firstIndex(of: admin) else { return .failure(.notAnAdmin) }
        guard admin.isValidSignature(signature, for: message) else { return .failure(.badSignature) }
        return .success(ConfigApproval(admin: UInt16(index), signature: signature))
    }
}

/// A proposal collecting admin approvals: a configuration change or policy edits.
protocol CollectsApprovals {
    var id: Digest { get }
    var approvals: [ConfigApproval] { get set }
}

extension Array where Element: CollectsApprovals {
    /// Records `approval` in the proposal with `id` (kept in increasing id order), made by
    /// `make` if there is none yet; an admin counts once. The proposal's index, or nil when a
    /// new proposal would take the list past `max`.
    mutating func record(_ approval: ConfigApproval, in id: Digest, max: Int, make: () -> Element) -> Int? {
        let position = firstIndex { $0.id >= id } ?? count
        if position == count || self[position].id != id {
            guard count < max else { return nil }
            insert(make(), at: position)
        }
        if !self[position].approvals.contains(where: { $0.admin == approval.admin }) {
            self[position].approvals.append(approval)
            self[position].approvals.sort { $0.admin < $1.admin }
        }
        return position
    }

    /// Records `approval` and says how far its proposal got against `config`'s threshold; nil
    /// when a new proposal would take the list past `max`.
    mutating func count<Subject>(_ approval: ConfigApproval, in id: Digest, max: Int, config: ClusterConfig,
                                 make: () -> Element) -> (position: Int, progress: ApprovalProgress<Subject>)? {
        guard let position = record(approval, in: id, max: max, make: make) else { return nil }
        return (position, ApprovalProgress(id: id, approvals: UInt16(self[position].approvals.count),
                                           threshold: UInt16(config.adminThreshold)))
    }
}
