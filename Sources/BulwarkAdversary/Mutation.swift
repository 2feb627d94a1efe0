import BulwarkConsensus
import BulwarkCore

/// The mutating adversary (ARCHITECTURE.md §7): honest messages of every type with an integer field
/// set to a boundary value and signed again with this replica's own key, so that the lie gets
/// past signature checks and reaches whatever arithmetic the receiver does with the field.
/// Deterministic: the field and the value follow the adversary's counter.
extension Adversary {
    /// The boundary values for a field whose honest value is `honest`.
    public static func boundaryValues(near honest: UInt64) -> [UInt64] {
        [0, 1, .max, .max - 1, honest &+ 1, honest &- 1, honest &+ (1 << 32), ProtocolBounds.heightMax,
         ProtocolBounds.heightMax + 1]
    }

    /// A boundary value for `honest`, picked by `salt`.
    static func boundary(_ honest: UInt64, _ salt: UInt64) -> UInt64 {
        let values = boundaryValues(near: honest)
        return values[Int(salt % UInt64(values.count))]
    }

    /// Copies of `message`, one per boundary value, of one integer field (the field rotates
    /// with the adversary's counter), each signed again where this replica can sign it. Where
    /// fields must agree for a receiver to look further (a proof's certificate height, header
    /// height and block hash), they change together, so the lie reaches the arithmetic behind
    /// the cheap checks.
    func mutations(of message: Message) -> [Message] {
        let field = counter
        return Self.boundaryValues(near: 0).indices.map { index in
            mutated(message, field: field) { honest in Self.boundaryValues(near: honest)[index] }
        }
    }

    /// `message` with the integer field that `field` selects set to `value`, signed again where
    /// this replica can sign it: the structure-aware fuzzer's mutation.
    public func mutated(_ message: Message, field: UInt64, to value: UInt64) -> Message {
        mutated(message, field: field) { _ in value }
    }

    func mutated(_ message: Message, field: UInt64, _ value: (UInt64) -> UInt64) -> Message {
        switch message {
        case let .request(request):
            var r = request
            r.requestID = value(r.requestID)
            return .request(r)
        case let .prePrepare(pp):
            return .prePrepare(mutated(pp, field: field, value))
        case let .prepare(p):
            let (view, height) = field % 2 == 0 ? (value(p.view), p.height) : (p.view, value(p.height))
            return .prepare(.signed(view: view, height: height, blockHash: p.blockHash, by: key, replica: id, cluster: cluster))
        case let .commit(c):
            let (view, height) = field % 2 == 0 ? (value(c.view), c.height) : (c.view, value(c.height))
            return .commit(.signed(view: view, height: height, blockHash: c.blockHash, by: key, replica: id, cluster: cluster))
        case let .checkpoint(cp):
            return .checkpoint(.signed(height: value(cp.height), blockHash: cp.blockHash, stateRoot: cp.stateRoot, by: key,
                                       replica: id, cluster: cluster))
        case let .checkpointProof(proof):
            return .checkpointProof(mutated(proof, field: field, value))
        case let .commitProof(proof):
            var p = proof
            switch field % 3 {
            case 0: (p.header, p.certificate.height, p.certificate.blockHash) = Self.atHeight(p.header, value)
            case 1: p.certificate.view = value(p.certificate.view)
            default: p.header.timestampMs = value(p.header.timestampMs)
            }
            return .commitProof(p)
        case let .viewChange(vc):
            return .viewChange(mutated(vc, field: field, value))
        case let .newView(nv):
            var view = nv.view
            var viewChanges = nv.viewChanges
            var proposals = nv.proposals
            switch field % 3 {
            case 0: view = value(view)
            case 1 where !viewChanges.isEmpty:
                let index = Int((field / 3) % UInt64(viewChanges.count))
                viewChanges[index] = mutated(viewChanges[index], field: field / 3, value)
            default:
                if proposals.isEmpty { view = value(view) } else { proposals[0] = mutated(proposals[0], field: field / 3, value) }
            }
            return .newView(.signed(view: view, viewChanges: viewChanges, proposals: proposals, by: key, replica: id,
                                    cluster: cluster))
        }
    }

    func mutated(_ pp: PrePrepare, field: UInt64, _ value: (UInt64) -> UInt64) -> PrePrepare {
        switch field % 5 {
        case 0:
            return .signed(view: value(pp.view), block: pp.block, by: key, replica: pp.replica, cluster: cluster)
        case 1: return resign(pp) { $0.height = value($0.height) }
        case 2: return resign(pp) { $0.view = value($0.view) }
        case 3: return resign(pp) { $0.timestampMs = value($0.timestampMs) }
        default: return resign(pp) { $0.proposer = ReplicaID(truncatingIfNeeded: value(UInt64($0.proposer))) }
        }
    }

    func mutated(_ proposal: Proposal, field: UInt64, _ value: (UInt64) -> UInt64) -> Proposal {
        var header = proposal.header
        var view = proposal.view
        switch field % 5 {
        case 0: view = value(view)
        case 1: header.height = value(header.height)
        case 2: header.view = value(header.view)
        case 3: header.timestampMs = value(header.timestampMs)
        default: header.proposer = ReplicaID(truncatingIfNeeded: value(UInt64(header.proposer)))
        }
        return .signed(view: view, header: header, by: key, replica: proposal.replica, cluster: cluster)
    }

    func mutated(_ proof: CheckpointProof, field: UInt64, _ value: (UInt64) -> UInt64) -> CheckpointProof {
        var p = proof
        switch field % 3 {
        case 0: (p.header, p.certificate.height, p.certificate.blockHash) = Self.atHeight(p.header, value)
        case 1:
            p.header.timestampMs = value(p.header.timestampMs)
            p.certificate.blockHash = p.header.hash
        default:
            // The accumulator's peaks follow its size, so the size's bits decide how many.
            let size = value(p.historyBefore.size)
            let peaks = (0..<size.nonzeroBitCount).map { Digest.sha256([UInt8($0)]) }
            p.historyBefore = MerkleAccumulator(size: size, peaks: peaks)!
        }
        return p
    }

    func mutated(_ vc: ViewChange, field: UInt64, _ value: (UInt64) -> UInt64) -> ViewChange {
        var newView = vc.newView
        var checkpoint = vc.checkpoint
        var prepared = vc.prepared
        switch field % 3 {
        case 0: newView = value(newView)
        case 1:
            // At genesis there is no proof to mutate: claim one at a boundary height.
            checkpoint = mutated(checkpoint ?? Self.emptyProof(cluster: cluster), field: field / 3, value)
        default:
            if prepared.isEmpty {
                newView = value(newView)
            } else {
                let cert = prepared[0]
                prepared[0] = PreparedCertificate(proposal: mutated(cert.proposal, field: field / 3, value),
                                                  prepares: cert.prepares)
            }
        }
        return .signed(newView: newView, checkpoint: checkpoint, prepared: prepared, by: key, replica: id, cluster: cluster)
    }

    /// `header` moved to the height `value` gives, with that height and the new header's hash:
    /// a proof's certificate names both, so they change together and the lie gets past the
    /// check that they agree.
    static func atHeight(_ header: BlockHeader, _ value: (UInt64) -> UInt64) -> (BlockHeader, Height, Digest) {
        var moved = header
        moved.height = value(header.height)
        return (moved, moved.height, moved.hash)
    }

    /// A checkpoint proof at height 0 with no votes: the shape that once crashed receivers.
    static func emptyProof(cluster: ClusterID) -> CheckpointProof {
        let header = BlockHeader(clusterID: cluster, height: 0, view: 0, timestampMs: 0, proposer: 0, prevBlockHash: .zero,
                                 txRoot: MerkleTree.emptyRoot, historyRoot: MerkleTree.emptyRoot)
        return CheckpointProof(certificate: ExecutionCertificate(height: 0, blockHash: header.hash, stateRoot: .zero, votes: []),
                               header: header, historyBefore: MerkleAccumulator())
    }

    /// A state-transfer answer with one block's integers at boundary values (heights, views and
    /// timestamps of the header, the commit certificate's height and view), for the shell to
    /// serve in place of the honest one.
    public func mutatedTransfer(_ entries: [LedgerEntry]) -> [LedgerEntry] {
        guard var entry = entries.first else { return entries }
        let salt = counter &+ UInt64(entries.count)
        let value = { (honest: UInt64) in Self.boundary(honest, salt) }
        var header = entry.block.header
        switch (salt / 9) % 5 {
        case 0: header.height = value(header.height)
        case 1: header.view = value(header.view)
        case 2: header.timestampMs = value(header.timestampMs)
        case 3: entry.certificate.height = value(entry.certificate.height)
        default: entry.certificate.view = value(entry.certificate.view)
        }
        entry.block = Block(header: header, requests: entry.block.requests)
        return [entry] + entries.dropFirst()
    }
}
