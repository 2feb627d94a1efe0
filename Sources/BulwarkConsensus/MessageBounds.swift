import BulwarkCore

/// Range checks on every height and view a message carries, done before the core touches
/// any of them (ARCHITECTURE.md §3: "every received integer is range-checked before arithmetic").
/// A message that fails is dropped and counted as `.outOfRange`; nothing in it is used.
extension Message {
    /// True when every height in the message is in 1...`ProtocolBounds.heightMax` and every
    /// view at most `ProtocolBounds.viewMax`, nested messages included.
    public var isInProtocolRange: Bool {
        switch self {
        case .request: return true
        case let .prePrepare(pp): return pp.isInProtocolRange
        case let .prepare(p): return ProtocolBounds.isView(p.view) && ProtocolBounds.isHeight(p.height)
        case let .commit(c): return ProtocolBounds.isView(c.view) && ProtocolBounds.isHeight(c.height)
        case let .checkpoint(c): return ProtocolBounds.isHeight(c.height)
        case let .checkpointProof(proof): return proof.isInProtocolRange
        case let .commitProof(proof):
            return ProtocolBounds.isHeight(proof.height) && ProtocolBounds.isView(proof.certificate.view)
                && proof.header.isInProtocolRange
        case let .viewChange(vc): return vc.isInProtocolRange
        case let .newView(nv):
            return nv.view >= 1 && ProtocolBounds.isView(nv.view) && nv.viewChanges.allSatisfy(\.isInProtocolRange)
                && nv.proposals.allSatisfy(\.isInProtocolRange)
        }
    }

    /// The highest view the message names, for the far-future check against the receiver's view.
    public var highestView: View {
        switch self {
        case .request, .checkpoint, .checkpointProof: return 0
        case let .prePrepare(pp): return pp.view
        case let .prepare(p): return p.view
        case let .commit(c): return c.view
        case let .commitProof(proof): return proof.certificate.view
        case let .viewChange(vc): return vc.newView
        case let .newView(nv): return nv.view
        }
    }
}

extension BlockHeader {
    var isInProtocolRange: Bool { ProtocolBounds.isHeight(height) && ProtocolBounds.isView(view) }
}

extension PrePrepare {
    var isInProtocolRange: Bool { ProtocolBounds.isView(view) && block.header.isInProtocolRange }
}

extension Proposal {
    var isInProtocolRange: Bool { ProtocolBounds.isView(view) && header.isInProtocolRange }
}

extension CheckpointProof {
    /// The history before block h holds h − 1 blocks; checked here without subtracting.
    var isInProtocolRange: Bool {
        ProtocolBounds.isHeight(height) && header.isInProtocolRange && historyBefore.size < height
    }
}

extension ViewChange {
    var isInProtocolRange: Bool {
        newView >= 1 && ProtocolBounds.isView(newView) && (checkpoint?.isInProtocolRange ?? true)
            && prepared.allSatisfy { cert in
                cert.proposal.isInProtocolRange
                    && cert.prepares.allSatisfy { ProtocolBounds.isView($0.view) && ProtocolBounds.isHeight($0.height) }
            }
    }
}
