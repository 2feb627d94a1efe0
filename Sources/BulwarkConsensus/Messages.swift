import BulwarkCore

/// PBFT's PRE-PREPARE (Castro & Liskov, TOCS 2002 §4.2): the primary of `view` assigns
/// `block` to height `block.height`. The signature covers (view, height, blockHash); the
/// block hash covers the header, whose `txRoot` covers every request.
public struct PrePrepare: Hashable, Sendable {
    public var view: View
    public var block: Block
    public var replica: ReplicaID
    public var signature: Signature
    /// Hash of `block.header`, computed once.
    public let blockHash: Digest

    public var height: Height { block.height }

    public init(view: View, block: Block, replica: ReplicaID, signature: Signature) {
        self.view = view
        self.block = block
        self.replica = replica
        self.signature = signature
        self.blockHash = block.hash
    }

    public static func signedMessage(cluster: ClusterID, view: View, height: Height, blockHash: Digest,
                                     replica: ReplicaID) -> [UInt8] {
        Domain.prePrepare.message(cluster: cluster) { w in
            w.write(view); w.write(height); w.write(blockHash); w.write(replica)
        }
    }

    public static func signed(view: View, block: Block, by key: PrivateKey, replica: ReplicaID, cluster: ClusterID) -> PrePrepare {
        let message = signedMessage(cluster: cluster, view: view, height: block.height, blockHash: block.hash, replica: replica)
        return PrePrepare(view: view, block: block, replica: replica, signature: key.sign(message))
    }

    func signedBytes(_ cluster: ClusterID) -> [UInt8] {
        Self.signedMessage(cluster: cluster, view: view, height: height, blockHash: blockHash, replica: replica)
    }
}

/// PBFT's PREPARE from a backup: it accepted the pre-prepare for (view, height) with this hash.
public struct Prepare: Hashable, Sendable {
    public var view: View
    public var height: Height
    public var blockHash: Digest
    public var replica: ReplicaID
    public var signature: Signature

    public init(view: View, height: Height, blockHash: Digest, replica: ReplicaID, signature: Signature) {
        self.view = view
        self.height = height
        self.blockHash = blockHash
        self.replica = replica
        self.signature = signature
    }

    public static func signedMessage(cluster: ClusterID, view: View, height: Height, blockHash: Digest,
                                     replica: ReplicaID) -> [UInt8] {
        Domain.prepare.message(cluster: cluster) { w in
            w.write(view); w.write(height); w.write(blockHash); w.write(replica)
        }
    }

    public static func signed(view: View, height: Height, blockHash: Digest, by key: PrivateKey, replica: ReplicaID,
                              cluster: ClusterID) -> Prepare {
        Prepare(view: view, height: height, blockHash: blockHash, replica: replica,
                signature: key.sign(signedMessage(cluster: cluster, view: view, height: height, blockHash: blockHash,
                                                  replica: replica)))
    }

    func signedBytes(_ cluster: ClusterID) -> [UInt8] {
        Self.signedMessage(cluster: cluster, view: view, height: height, blockHash: blockHash, replica: replica)
    }
}

/// PBFT's COMMIT. A quorum of these for one (view, height, hash) is the block's
/// `CommitCertificate`: the signed bytes are the same.
public struct Commit: Hashable, Sendable {
    public var view: View
    public var height: Height
    public var blockHash: Digest
    public var replica: ReplicaID
    public var signature: Signature

    public init(view: View, height: Height, blockHash: Digest, replica: ReplicaID, signature: Signature) {
        self.view = view
        self.height = height
        self.blockHash = blockHash
        self.replica = replica
        self.signature = signature
    }

    public static func signed(view: View, height: Height, blockHash: Digest, by key: PrivateKey, replica: ReplicaID,
                              cluster: ClusterID) -> Commit {
        Commit(view: view, height: height, blockHash: blockHash, replica: replica,
               signature: key.sign(CommitCertificate.signedMessage(cluster: cluster, view: view, height: height,
                                                                  blockHash: blockHash, replica: replica)))
    }

    func signedBytes(_ cluster: ClusterID) -> [UInt8] {
        CommitCertificate.signedMessage(cluster: cluster, view: view, height: height, blockHash: blockHash, replica: replica)
    }
}

/// PBFT's CHECKPOINT: the state after executing `height`. A quorum of matching ones is the
/// `ExecutionCertificate`.
public struct Checkpoint: Hashable, Sendable {
    public var height: Height
    public var blockHash: Digest
    public var stateRoot: Digest
    public var replica: ReplicaID
    public var signature: Signature

    public init(height: Height, blockHash: Digest, stateRoot: Digest, replica: ReplicaID, signature: Signature) {
        self.height = height
        self.blockHash = blockHash
        self.stateRoot = stateRoot
        self.replica = replica
        self.signature = signature
    }

    public static func signed(height: Height, blockHash: Digest, stateRoot: Digest, by key: PrivateKey, replica: ReplicaID,
                              cluster: ClusterID) -> Checkpoint {
        Checkpoint(height: height, blockHash: blockHash, stateRoot: stateRoot, replica: replica,
                   signature: key.sign(ExecutionCertificate.signedMessage(cluster: cluster, height: height, blockHash: blockHash,
                                                                         stateRoot: stateRoot, replica: replica)))
    }

    func signedBytes(_ cluster: ClusterID) -> [UInt8] {
        ExecutionCertificate.signedMessage(cluster: cluster, height: height, blockHash: blockHash, stateRoot: stateRoot,
                                           replica: replica)
    }
}

/// A stable checkpoint with what a replica needs to continue the chain above it: the
/// execution certificate, the header of the checkpoint block (its hash is the certified
/// `blockHash`), and the history accumulator before that block (its root is the header's
/// `historyRoot`). Every part is checked against the others, so no sender is trusted.
public struct CheckpointProof: Hashable, Sendable {
    public var certificate: ExecutionCertificate
    public var header: BlockHeader
    public var historyBefore: MerkleAccumulator

    public init(certificate: ExecutionCertificate, header: BlockHeader, historyBefore: MerkleAccumulator) {
        self.certificate = certificate
        self.header = header
        self.historyBefore = historyBefore
    }

    public var height: Height { certificate.height }

    /// The chain position right after the checkpoint block.
    public var tip: ChainTip {
        var history = historyBefore
        history.append(leafHash: MerkleTree.leafHash(certificate.blockHash))
        return ChainTip(height: height, blockHash: certificate.blockHash, timestampMs: header.timestampMs, history: history)
    }
}

/// The newest block a replica delivered, with its commit certificate: re-announced when the
/// cluster is idle so that a replica that missed the last few blocks fetches them.
public struct CommitProof: Hashable, Sendable {
    public var header: BlockHeader
    public var certificate: CommitCertificate

    public init(header: BlockHeader, certificate: CommitCertificate) {
        self.header = header
        self.certificate = certificate
    }

    public var height: Height { certificate.height }
}

/// A PRE-PREPARE without its requests: the header it names and the primary's signature, which
/// covers (view, height, blockHash) only, so it verifies without the block's body. Prepared
/// certificates, VIEW-CHANGE and NEW-VIEW carry these, never bodies (TOCS §4.4: "pre-prepare
/// messages … without the request"): a view change costs the same whatever the values
/// written, and every message fits a frame by construction (SPEC.md §14.1). The bodies travel
/// as ordinary PRE-PREPAREs, each within one frame.
public struct Proposal: Hashable, Sendable {
    public var view: View
    public var header: BlockHeader
    public var replica: ReplicaID
    public var signature: Signature
    /// Hash of `header`, computed once.
    public let blockHash: Digest

    public var height: Height { header.height }

    public init(view: View, header: BlockHeader, replica: ReplicaID, signature: Signature) {
        self.view = view
        self.header = header
        self.replica = replica
        self.signature = signature
        self.blockHash = header.hash
    }

    public static func signed(view: View, header: BlockHeader, by key: PrivateKey, replica: ReplicaID,
                              cluster: ClusterID) -> Proposal {
        let hash = header.hash
        let message = PrePrepare.signedMessage(cluster: cluster, view: view, height: header.height, blockHash: hash,
                                               replica: replica)
        return Proposal(view: view, header: header, replica: replica, signature: key.sign(message))
    }

    func signedBytes(_ cluster: ClusterID) -> [UInt8] {
        PrePrepare.signedMessage(cluster: cluster, view: view, height: height, blockHash: blockHash, replica: replica)
    }
}

extension PrePrepare {
    /// The same PRE-PREPARE without its body (the signature is valid for both).
    public var proposal: Proposal { Proposal(view: view, header: block.header, replica: replica, signature: signature) }

    /// The PRE-PREPARE a proposal stands for, given the body it names (nil for another body).
    public init?(_ proposal: Proposal, body: Block) {
        guard body.header == proposal.header else { return nil }
        self.init(view: proposal.view, block: body, replica: proposal.replica, signature: proposal.signature)
    }
}

/// PBFT's P set entry: a pre-prepare (without its body) and quorum−1 matching prepares from
/// distinct backups.
public struct PreparedCertificate: Hashable, Sendable {
    public var proposal: Proposal
    public var prepares: [Prepare]

    public init(proposal: Proposal, prepares: [Prepare]) {
        self.proposal = proposal
        self.prepares = prepares.sorted { $0.replica < $1.replica }
    }

    public var height: Height { proposal.height }
    public var view: View { proposal.view }
}

/// PBFT's VIEW-CHANGE (TOCS §4.4): replica `replica` moves to `newView`, carrying its stable
/// checkpoint proof (nil at genesis) and a prepared certificate for every height above it.
public struct ViewChange: Hashable, Sendable {
    public var newView: View
    public var checkpoint: CheckpointProof?
    /// Increasing by height, at most one per height (the one from the highest view).
    public var prepared: [PreparedCertificate]
    public var replica: ReplicaID
    public var signature: Signature

    public init(newView: View, checkpoint: CheckpointProof?, prepared: [PreparedCertificate], replica: ReplicaID,
                signature: Signature) {
        self.newView = newView
        self.checkpoint = checkpoint
        self.prepared = prepared
        self.replica = replica
        self.signature = signature
    }

    public var checkpointHeight: Height { checkpoint?.height ?? 0 }

    /// The signature covers the epoch and the digest of the whole body: views restart at 0 in
    /// every epoch, so a view change of one epoch must be worthless in another.
    func signedBytes(_ cluster: ClusterID, epoch: UInt64) -> [UInt8] {
        var body = CanonicalWriter()
        encodeBody(to: &body)
        let digest = Digest.tagged(.viewChange, cluster: cluster, body.bytes)
        return Domain.viewChange.message(cluster: cluster) { w in
            w.write(epoch)
            w.write(digest)
        }
    }

    public static func signed(newView: View, checkpoint: CheckpointProof?, prepared: [PreparedCertificate],
                              by key: PrivateKey, replica: ReplicaID, cluster: ClusterID, epoch: UInt64 = 0) -> ViewChange {
        var vc = ViewChange(newView: newView, checkpoint: checkpoint, prepared: prepared, replica: replica, signature: .zero)
        vc.signature = key.sign(vc.signedBytes(cluster, epoch: epoch))
        return vc
    }
}

/// PBFT's NEW-VIEW: the new primary's proof (a quorum of view-changes) and the proposals it
/// derived from them, which every replica recomputes and compares. Proposals carry headers;
/// a replica takes each body from what it holds or from the primary's PRE-PREPARE.
public struct NewView: Hashable, Sendable {
    public var view: View
    public var viewChanges: [ViewChange]
    public var proposals: [Proposal]
    public var replica: ReplicaID
    public var signature: Signature

    public init(view: View, viewChanges: [ViewChange], proposals: [Proposal], replica: ReplicaID, signature: Signature) {
        self.view = view
        self.viewChanges = viewChanges
        self.proposals = proposals
        self.replica = replica
        self.signature = signature
    }

    /// Covers the epoch and the digest of the whole body, as a VIEW-CHANGE's does.
    func signedBytes(_ cluster: ClusterID, epoch: UInt64) -> [UInt8] {
        var body = CanonicalWriter()
        encodeBody(to: &body)
        let digest = Digest.tagged(.newView, cluster: cluster, body.bytes)
        return Domain.newView.message(cluster: cluster) { w in
            w.write(epoch)
            w.write(digest)
        }
    }

    public static func signed(view: View, viewChanges: [ViewChange], proposals: [Proposal], by key: PrivateKey,
                              replica: ReplicaID, cluster: ClusterID, epoch: UInt64 = 0) -> NewView {
        var nv = NewView(view: view, viewChanges: viewChanges, proposals: proposals, replica: replica, signature: .zero)
        nv.signature = key.sign(nv.signedBytes(cluster, epoch: epoch))
        return nv
    }
}

/// Everything replicas send each other.
public enum Message: Hashable, Sendable {
    case request(Request)
    case prePrepare(PrePrepare)
    case prepare(Prepare)
    case commit(Commit)
    case checkpoint(Checkpoint)
    /// A stable checkpoint, re-announced so that replicas that fell behind learn where to
    /// catch up to.
    case checkpointProof(CheckpointProof)
    /// The sender's newest committed block, re-announced so laggards catch up.
    case commitProof(CommitProof)
    case viewChange(ViewChange)
    case newView(NewView)

    /// The replica that signed it (nil for client requests).
    public var sender: ReplicaID? {
        switch self {
        case .request, .checkpointProof, .commitProof: return nil
        case let .prePrepare(m): return m.replica
        case let .prepare(m): return m.replica
        case let .commit(m): return m.replica
        case let .checkpoint(m): return m.replica
        case let .viewChange(m): return m.replica
        case let .newView(m): return m.replica
        }
    }

    public var kind: String {
        switch self {
        case .request: return "request"
        case .prePrepare: return "pre-prepare"
        case .prepare: return "prepare"
        case .commit: return "commit"
        case .checkpoint: return "checkpoint"
        case .checkpointProof: return "checkpoint-proof"
        case .commitProof: return "commit-proof"
        case .viewChange: return "view-change"
        case .newView: return "new-view"
        }
    }
}

