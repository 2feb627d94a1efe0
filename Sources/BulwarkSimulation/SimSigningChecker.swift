import BulwarkConsensus
import BulwarkCore

/// The checker that no honest replica ever signs two different messages in one place: one
/// block per (view, height) in pre-prepares, prepares and commits, one state per checkpoint
/// height, one view-change and one new-view per view. A replica's earlier lives count: the
/// checker remembers what it signed before a crash, or before its disk was wiped.
extension Simulation {
    /// Where a signed message stands: its kind, signer, epoch, view and height.
    struct SignedPlace: Hashable {
        var kind: UInt8
        var replica: ReplicaID
        var epoch: UInt64
        var view: View
        var height: Height
    }

    /// Records a message an honest node sent, and fails the run when it signed something other
    /// than what it (or its earlier life) signed before in the same place.
    func noteSigned(_ message: Message, epoch: UInt64, by node: SimNode) {
        guard node.adversary == nil, node.replica != options.twins else { return }
        let me = ReplicaID(node.replica)
        let place: SignedPlace
        let content: Digest
        switch message {
        case let .prePrepare(m) where m.replica == me:
            (place, content) = (SignedPlace(kind: 2, replica: me, epoch: epoch, view: m.view, height: m.height), m.blockHash)
        case let .prepare(m) where m.replica == me:
            (place, content) = (SignedPlace(kind: 3, replica: me, epoch: epoch, view: m.view, height: m.height), m.blockHash)
        case let .commit(m) where m.replica == me:
            (place, content) = (SignedPlace(kind: 4, replica: me, epoch: epoch, view: m.view, height: m.height), m.blockHash)
        case let .checkpoint(m) where m.replica == me:
            (place, content) = (SignedPlace(kind: 5, replica: me, epoch: epoch, view: 0, height: m.height),
                                Digest.sha256(m.blockHash.bytes + m.stateRoot.bytes))
        case let .viewChange(m) where m.replica == me:
            (place, content) = (SignedPlace(kind: 7, replica: me, epoch: epoch, view: m.newView, height: 0),
                                Digest.sha256(Message.viewChange(m).encoded()))
        case let .newView(m) where m.replica == me:
            (place, content) = (SignedPlace(kind: 8, replica: me, epoch: epoch, view: m.view, height: 0),
                                Digest.sha256(Message.newView(m).encoded()))
        default:
            return
        }
        report.signedMessagesChecked += 1
        if let earlier = signedPlaces[place] {
            if earlier != content, !signingConflictReported {
                signingConflictReported = true
                report.failures.append("signing: replica \(node.replica) signed two different \(Self.kindName(place.kind)) messages in epoch \(epoch), view \(place.view), height \(place.height) (at \(now)ms)")
            }
        } else {
            signedPlaces[place] = content
        }
    }

    static func kindName(_ kind: UInt8) -> String {
        switch kind {
        case 2: "PRE-PREPARE"
        case 3: "PREPARE"
        case 4: "COMMIT"
        case 5: "CHECKPOINT"
        case 7: "VIEW-CHANGE"
        default: "NEW-VIEW"
        }
    }
}
