/// The replicated configuration (SPEC.md §18): which epoch the ledger is in, the
/// configuration in force, proposals collecting admin approvals, and an approved change
/// waiting for its boundary. Part of the state and of its root, so a certified state root
/// proves the configuration.
public struct Governance: Hashable, Sendable {
    /// The current epoch; `cluster.json` is epoch 0.
    public var epoch: UInt64
    /// The configuration in force from `firstHeight` on.
    public var config: ClusterConfig
    /// The first block of this epoch (1 for epoch 0).
    public var firstHeight: Height
    /// Proposals for the next configuration, by increasing id; at most `proposalsMax`.
    public var proposals: [ConfigProposal]
    /// An approved change: epoch `epoch` ends with block `lastHeight`, and `config` is in
    /// force from the next block on.
    public var scheduled: ScheduledChange?
    /// The last block of every earlier epoch: epoch i ended with block `epochEnds[i]`.
    public var epochEnds: [Height]

    /// The most epochs a ledger may have (a bound for decoders; each takes at least a
    /// watermark window of blocks).
    public static let epochsMax = 1 << 20

    /// Proposals collecting approvals at once; a further one is refused until a change
    /// completes (which clears them all).
    public static let proposalsMax = 16

    public init(genesis: ClusterConfig) {
        epoch = 0
        config = genesis
        firstHeight = 1
        proposals = []
        scheduled = nil
        epochEnds = []
    }

    /// The bytes admin `admin` signs to approve `config` as the successor of `epoch`: the
    /// configuration together with the epoch it replaces, so an approval is worthless in any
    /// other epoch or cluster.
    public static func approvalMessage(cluster: ClusterID, epoch: UInt64, configHash: Digest) -> [UInt8] {
        Domain.configApproval.message(cluster: cluster) { w in
            w.write(epoch)
            w.write(configHash)
        }
    }

    /// A proposal's id: the SHA-256 of the message its approvals sign.
    public static func proposalID(cluster: ClusterID, epoch: UInt64, configHash: Digest) -> Digest {
        Digest.sha256(approvalMessage(cluster: cluster, epoch: epoch, configHash: configHash))
    }

    /// The last block of an epoch whose change completed in block `height`: the first
    /// multiple of the checkpoint interval at least a watermark window later. Every block up
    /// to it may already be ordered when the change executes; none after it can be (a replica
    /// accepts a proposal only within a window of what it executed), so the boundary is the
    /// same for every replica, and the checkpoint there is certified by the old epoch. Nil
    /// only when that height would not fit in 64 bits.
    public static func lastHeight(completedAt height: Height, parameters: ProtocolParameters) -> Height? {
        let interval = parameters.checkpointInterval
        let (sum, overflow) = height.addingReportingOverflow(parameters.watermarkWindow)
        guard !overflow, interval > 0 else { return nil }
        let remainder = sum % interval
        if remainder == 0 { return sum == .max ? nil : sum }
        let (last, overflow2) = sum.addingReportingOverflow(interval - remainder)
        // The next epoch's first height must fit too.
        return overflow2 || last == .max ? nil : last
    }

    /// The epoch a block at `height` belongs to, as far as this state knows: the current
    /// epoch up to a scheduled boundary, the next one after it.
    public func epoch(at height: Height) -> UInt64 {
        if let scheduled, height > scheduled.lastHeight { return epoch + 1 }
        return epoch
    }
}

/// A configuration collecting approvals.
public struct ConfigProposal: Hashable, Sendable {
    public var id: Digest
    public var config: ClusterConfig
    /// By increasing admin index in the current configuration's `admins`.
    public var approvals: [ConfigApproval]

    public init(id: Digest, config: ClusterConfig, approvals: [ConfigApproval]) {
        self.id = id
        self.config = config
        self.approvals = approvals
    }
}

/// One admin's signature over `Governance.approvalMessage`.
public struct ConfigApproval: Hashable, Sendable {
    /// The admin's position in the approving configuration's `admins`.
    public var admin: UInt16
    public var signature: Signature

    public init(admin: UInt16, signature: Signature) {
        self.admin = admin
        self.signature = signature
    }
}

/// An approved change waiting for its boundary.
public struct ScheduledChange: Hashable, Sendable {
    public var id: Digest
    public var lastHeight: Height
    public var config: ClusterConfig
    public var approvals: [ConfigApproval]

    public init(id: Digest, lastHeight: Height, config: ClusterConfig, approvals: [ConfigApproval]) {
        self.id = id
        self.lastHeight = lastHeight
        self.config = config
        self.approvals = approvals
    }
}

/// What `approve-config` carries: one admin's approval of a complete new configuration.
public struct ConfigApprovalRequest: Hashable, Sendable {
    /// The epoch the configuration replaces.
    public var epoch: UInt64
    public var config: ClusterConfig
    public var admin: PublicKey
    public var signature: Signature

    public init(epoch: UInt64, config: ClusterConfig, admin: PublicKey, signature: Signature) {
        self.epoch = epoch
        self.config = config
        self.admin = admin
        self.signature = signature
    }

    /// Signs `config` as the successor of `epoch` with an admin's key.
    public init(epoch: UInt64, config: ClusterConfig, adminKey: PrivateKey) {
        let message = Governance.approvalMessage(cluster: config.clusterID, epoch: epoch, configHash: config.hash)
        self.init(epoch: epoch, config: config, admin: adminKey.publicKey, signature: adminKey.sign(message))
    }

    public var proposalID: Digest {
        Governance.proposalID(cluster: config.clusterID, epoch: epoch, configHash: config.hash)
    }
}

/// Why an approval changed nothing (SPEC.md §18.3): a stable code, never a sentence.
public enum ConfigRefusal: Hashable, Sendable, CustomStringConvertible {
    /// The approval replaces another epoch than the current one.
    case wrongEpoch(current: UInt64)
    /// The configuration names another cluster.
    case otherCluster
    /// The key is not an admin of the current configuration.
    case notAnAdmin
    /// The signature does not verify.
    case badSignature
    /// A change is already approved and waits for its boundary.
    case changePending(lastHeight: Height)
    /// `Governance.proposalsMax` proposals are open.
    case tooManyProposals(max: UInt64)
    /// The boundary would not fit in 64 bits.
    case heightExhausted

    public var description: String {
        switch self {
        case let .wrongEpoch(current): return "the approval is for another epoch; the current epoch is \(current)"
        case .otherCluster: return "the configuration names another cluster"
        case .notAnAdmin: return "the key is not an admin of the current configuration"
        case .badSignature: return "the approval's signature does not verify"
        case let .changePending(last): return "a change is already approved; it takes effect after height \(last)"
        case let .tooManyProposals(max): return "\(max) proposals are already open"
        case .heightExhausted: return "the ledger's heights are exhausted"
        }
    }
}

// MARK: - Encoding

extension ConfigApproval: CanonicalCodable {
    public func encode(to w: inout CanonicalWriter) {
        w.write(admin)
        w.write(signature)
    }

    public init(from r: inout CanonicalReader) throws(CodecError) {
        admin = try r.readUInt16("approval admin")
        signature = try r.readSignature("approval signature")
    }
}

extension ConfigProposal: CanonicalCodable {
    public func encode(to w: inout CanonicalWriter) {
        w.write(id)
        w.write(config)
        w.write(approvals)
    }

    public init(from r: inout CanonicalReader) throws(CodecError) {
        id = try r.readDigest("proposal id")
        config = try r.read(ClusterConfig.self)
        approvals = try r.readArray(ConfigApproval.self, "approvals", max: ClusterConfig.adminsMax)
    }
}

extension ScheduledChange: CanonicalCodable {
    public func encode(to w: inout CanonicalWriter) {
        w.write(id)
        w.write(lastHeight)
        w.write(config)
        w.write(approvals)
    }

    public init(from r: inout CanonicalReader) throws(CodecError) {
        id = try r.readDigest("scheduled id")
        lastHeight = try r.readUInt64("scheduled last height")
        config = try r.read(ClusterConfig.self)
        approvals = try r.readArray(ConfigApproval.self, "approvals", max: ClusterConfig.adminsMax)
    }
}

extension Governance: CanonicalCodable {
    static let formatVersion: UInt8 = 1

    public func encode(to w: inout CanonicalWriter) {
        w.write(Self.formatVersion)
        w.write(epoch)
        w.write(firstHeight)
        w.write(config)
        w.write(proposals)
        w.write(optional: scheduled)
        w.write(UInt32(epochEnds.count))
        for end in epochEnds { w.write(end) }
    }

    public init(from r: inout CanonicalReader) throws(CodecError) {
        try r.readVersion("governance", supported: Self.formatVersion)
        epoch = try r.readUInt64("epoch")
        firstHeight = try r.readUInt64("epoch first height")
        config = try r.read(ClusterConfig.self)
        proposals = try r.readArray(ConfigProposal.self, "proposals", max: Self.proposalsMax)
        for (a, b) in zip(proposals, proposals.dropFirst()) where a.id >= b.id {
            throw .invalidValue(field: "proposals", reason: "ids not strictly increasing")
        }
        scheduled = try r.readOptional(ScheduledChange.self, "scheduled change")
        let count = Int(try r.readUInt32("epoch ends"))
        guard count <= Self.epochsMax, UInt64(count) == epoch else {
            throw .invalidValue(field: "epoch ends", reason: "\(count) ends for epoch \(epoch)")
        }
        epochEnds = []
        for _ in 0..<count {
            let end = try r.readUInt64("epoch end")
            guard end > (epochEnds.last ?? 0), end < .max else { throw .invalidValue(field: "epoch ends", reason: "not increasing") }
            epochEnds.append(end)
        }
        guard firstHeight == (epochEnds.last ?? 0) + 1 else {
            throw .invalidValue(field: "epoch first height", reason: "\(firstHeight) does not follow the last epoch's end")
        }
    }
}

extension ConfigApprovalRequest: CanonicalCodable {
    public func encode(to w: inout CanonicalWriter) {
        w.write(epoch)
        w.write(config)
        w.write(admin)
        w.write(signature)
    }

    public init(from r: inout CanonicalReader) throws(CodecError) {
        epoch = try r.readUInt64("approval epoch")
        config = try r.read(ClusterConfig.self)
        admin = try r.readPublicKey("approval admin")
        signature = try r.readSignature("approval signature")
    }
}

extension ConfigRefusal: CanonicalCodable {
    public func encode(to w: inout CanonicalWriter) {
        switch self {
        case let .wrongEpoch(current): w.write(UInt8(1)); w.write(current)
        case .otherCluster: w.write(UInt8(2))
        case .notAnAdmin: w.write(UInt8(3))
        case .badSignature: w.write(UInt8(4))
        case let .changePending(last): w.write(UInt8(5)); w.write(last)
        case let .tooManyProposals(max): w.write(UInt8(6)); w.write(max)
        case .heightExhausted: w.write(UInt8(7))
        }
    }

    public init(from r: inout CanonicalReader) throws(CodecError) {
        let tag = try r.readUInt8("config refusal")
        switch tag {
        case 1: self = .wrongEpoch(current: try r.readUInt64("current epoch"))
        case 2: self = .otherCluster
        case 3: self = .notAnAdmin
        case 4: self = .badSignature
        case 5: self = .changePending(lastHeight: try r.readUInt64("last height"))
        case 6: self = .tooManyProposals(max: try r.readUInt64("proposals max"))
        case 7: self = .heightExhausted
        default: throw .unknownTag(type: "config refusal", tag: tag)
        }
    }
}
