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

    public func completed(at completion: UInt64) -> Self {
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

