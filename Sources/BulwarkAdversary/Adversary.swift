import BulwarkConsensus
import BulwarkCore
import BulwarkShell

/// A named way for a replica to misbehave (ARCHITECTURE.md §7). Each one rewrites what an honest core
/// would send: the replica keeps its real key and runs the honest protocol underneath, so it
/// lies exactly where its behaviours say and nowhere else. Behaviours combine.
public enum Behaviour: String, CaseIterable, Sendable, Comparable {
    // As primary.
    /// Different pre-prepares for one height: half the backups get one block, half another.
    case equivocate = "equivocate"
    /// A batch holding a client request whose signature does not verify.
    case forgedRequest = "forged-request"
    /// In a closed cluster, every batch also holds a validly signed request, from this
    /// replica's own key used as a client's, that takes a million from the workload's first
    /// account (`acct0`): the policy grants that key nothing, so the ledger must deny it. (In
    /// an open cluster any key may do this, so it is no lie and nothing is added.)
    case unauthorizedRequest = "unauthorized-request"
    case wrongTxRoot = "wrong-tx-root"
    case wrongHistoryRoot = "wrong-history-root"
    case wrongPrevHash = "wrong-prev-hash"
    /// Block timestamps an hour ahead of the clock.
    case timestampAhead = "timestamp-ahead"
    /// Block timestamps an hour behind the clock (and behind the previous block).
    case timestampBehind = "timestamp-behind"
    /// Pre-prepares reach only one backup, so no quorum can prepare them.
    case withholdPrePrepares = "withhold-pre-prepares"
    /// Pre-prepares sent 3/8 of the view-change timeout late. A request can wait for the block
    /// in flight and then for its own, so requests wait up to three quarters of the timeout:
    /// slow enough to cut throughput, quick enough that no request timer expires.
    case slowPrimary = "slow-primary"
    /// Proposals numbered one height too high.
    case skipHeights = "skip-heights"
    /// Every proposal is followed by another block for the height before it.
    case reuseHeights = "reuse-heights"
    /// A NEW-VIEW without the last pre-prepare its view-changes justify.
    case newViewDropsPrepared = "new-view-drops-prepared"
    /// A NEW-VIEW with one more pre-prepare than its view-changes justify.
    case newViewInventsRequest = "new-view-invents-request"
    // As any replica.
    /// Prepares and commits for another block hash to half the replicas.
    case conflictingVotes = "conflicting-votes"
    /// Every signature flipped in one bit.
    case invalidSignatures = "invalid-signatures"
    /// Messages that claim another replica as sender, signed with this replica's own key.
    case impersonate = "impersonate"
    /// Messages this replica sent earlier (older views and heights) sent again.
    case replayOldMessages = "replay-old-messages"
    /// View-changes for views far ahead and prepares for heights far ahead, with every message.
    case floodFuture = "flood-future"
    /// View-changes carrying a prepared certificate that no quorum ever signed.
    case forgedPreparedCertificate = "forged-prepared-certificate"
    /// Checkpoints with a wrong state root.
    case lyingCheckpoints = "lying-checkpoints"
    /// Besides each honest message, a copy with one integer field (height, view, timestamp,
    /// size, id, nested proofs and certificates included) set to a boundary value — 0, 1, the
    /// largest, one below it, one either side of the honest value, far ahead — signed again
    /// with this replica's own key. With the shell's help, state-transfer requests and answers
    /// too.
    case mutateIntegers = "mutate-integers"
    /// Replies to clients with a made-up result.
    case lyingReplies = "lying-replies"
    /// Blocks served in state transfer are altered or cut short (the shell applies this one).
    case forgedStateTransfer = "forged-state-transfer"
    /// Answers a rejoining replica's `progressQuery` with claims it cannot prove: by turns an
    /// epoch 2^40 ahead with no commit proof, and a view 2^40 ahead of its proof's (the shell
    /// applies this one). A lie may delay a rejoin by a bounded amount only (SPEC.md §14.4).
    case lyingProgress = "lying-progress"
    /// Sends nothing at all.
    case silent = "silent"
    /// Crashes and restarts over and over (the shell applies this one).
    case crashLoop = "crash-loop"

    /// Behaviours that only matter while this replica is primary.
    public var isPrimaryBehaviour: Bool {
        switch self {
        case .equivocate, .slowPrimary, .forgedRequest, .unauthorizedRequest, .wrongTxRoot, .wrongHistoryRoot, .wrongPrevHash, .timestampAhead,
             .timestampBehind, .withholdPrePrepares, .skipHeights, .reuseHeights, .newViewDropsPrepared,
             .newViewInventsRequest:
            return true
        default:
            return false
        }
    }

    public static func < (a: Behaviour, b: Behaviour) -> Bool { a.rawValue < b.rawValue }
}

/// Rewrites an honest core's actions into a Byzantine replica's. Deterministic: the same
/// actions give the same lies, so simulations replay.
public struct Adversary: Sendable {
    public let behaviours: Set<Behaviour>
    let config: ClusterConfig
    let id: ReplicaID
    let key: PrivateKey
    /// Messages the honest core sent so far, oldest first (bounded), for replays.
    var history: [Message] = []
    var lastPrePrepare: PrePrepare?
    var counter: UInt64 = 0
    /// State-transfer answers served so far (the lies take turns).
    var servedAnswers: UInt64 = 0
    /// Progress answers given so far (the lies take turns).
    var progressAnswers: UInt64 = 0
    static let replayBufferMax = 256

    public init(behaviours: Set<Behaviour>, config: ClusterConfig, id: ReplicaID, key: PrivateKey) {
        self.behaviours = behaviours
        self.config = config
        self.id = id
        self.key = key
    }

    var cluster: ClusterID { config.clusterID }
    var others: [ReplicaID] { config.validators.map(\.id).filter { $0 != id } }

    /// The actions a Byzantine replica carries out instead of `actions`. Broadcasts become
    /// per-destination sends where the lie differs by destination.
    public mutating func rewrite(_ actions: [Action]) -> [Action] {
        var out: [Action] = []
        for action in actions {
            switch action {
            case let .broadcast(message):
                for to in others { out += deliveries(of: message, to: to) }
                sent(message)
            case let .send(message, to):
                out += deliveries(of: message, to: to)
                sent(message)
            case let .reply(reply):
                if behaviours.contains(.silent) { continue }
                if behaviours.contains(.lyingReplies) {
                    var lie = reply
                    lie.result = OperationResult.rejected(.tooManyOperations(count: UInt64(id), max: 0)).encoded()
                    out.append(.reply(lie))
                } else {
                    out.append(action)
                }
            default:
                out.append(action)
            }
        }
        return out
    }

    /// Remembers what the honest core sent (once, whatever the destinations), for replays and
    /// for reusing the previous height.
    mutating func sent(_ message: Message) {
        if case let .prePrepare(pp) = message { lastPrePrepare = pp }
        if case .request = message { return }
        history.append(message)
        if history.count > Self.replayBufferMax { history.removeFirst(history.count - Self.replayBufferMax) }
    }

    /// What `message` becomes on its way to `to`: nothing, itself, a lie, or several messages.
    mutating func deliveries(of message: Message, to: ReplicaID) -> [Action] {
        if behaviours.contains(.silent) { return [] }
        counter &+= 1
        var messages = [lie(about: message, to: to)].compactMap { $0 }
        if behaviours.contains(.reuseHeights), case let .prePrepare(pp) = message, pp.height > 1,
           let previous = lastPrePrepare, previous.height == pp.height - 1 {
            messages.append(.prePrepare(resign(previous) { $0.timestampMs += 1 }))
        }
        if behaviours.contains(.replayOldMessages), !history.isEmpty {
            messages.append(history[Int(counter % UInt64(history.count))])
        }
        if behaviours.contains(.mutateIntegers) { messages += mutations(of: message) }
        if behaviours.contains(.floodFuture) {
            let far = View(1_000) + counter
            messages.append(.viewChange(.signed(newView: far, checkpoint: nil, prepared: [], by: key, replica: id,
                                                cluster: cluster)))
            messages.append(.prepare(.signed(view: 0, height: 1_000_000 + counter, blockHash: Digest.sha256([UInt8(counter & 0xFF)]),
                                             by: key, replica: id, cluster: cluster)))
        }
        return messages.map { .send($0, to: to) }
    }

    /// The lie about one message to one destination (nil: withheld).
    func lie(about message: Message, to: ReplicaID) -> Message? {
        var message = message
        let upper = Int(to) % 2 == 1
        switch message {
        case var .prePrepare(pp) where pp.replica == id:
            if behaviours.contains(.withholdPrePrepares), to != others.first { return nil }
            if behaviours.contains(.equivocate), upper {
                pp = resign(pp) { $0.timestampMs += 1 }
            }
            if behaviours.contains(.forgedRequest) { pp = forgeRequest(in: pp) }
            if behaviours.contains(.unauthorizedRequest), config.policy == .closed { pp = addUnauthorizedRequest(to: pp) }
            if behaviours.contains(.wrongTxRoot) { pp = resign(pp) { $0.txRoot = Digest.sha256($0.txRoot.bytes) } }
            if behaviours.contains(.wrongHistoryRoot) { pp = resign(pp) { $0.historyRoot = Digest.sha256($0.historyRoot.bytes) } }
            if behaviours.contains(.wrongPrevHash) { pp = resign(pp) { $0.prevBlockHash = Digest.sha256($0.prevBlockHash.bytes) } }
            if behaviours.contains(.timestampAhead) { pp = resign(pp) { $0.timestampMs += 3_600_000 } }
            if behaviours.contains(.timestampBehind) { pp = resign(pp) { $0.timestampMs = $0.timestampMs > 3_600_000 ? $0.timestampMs - 3_600_000 : 0 } }
            if behaviours.contains(.skipHeights) { pp = resign(pp) { $0.height += 1 } }
            message = .prePrepare(pp)
        case var .prepare(p) where p.replica == id:
            if behaviours.contains(.conflictingVotes), upper {
                p = .signed(view: p.view, height: p.height, blockHash: Digest.sha256(p.blockHash.bytes), by: key, replica: id,
                            cluster: cluster)
            }
            message = .prepare(p)
        case var .commit(c) where c.replica == id:
            if behaviours.contains(.conflictingVotes), upper {
                c = .signed(view: c.view, height: c.height, blockHash: Digest.sha256(c.blockHash.bytes), by: key, replica: id,
                            cluster: cluster)
            }
            message = .commit(c)
        case var .checkpoint(cp) where cp.replica == id:
            if behaviours.contains(.lyingCheckpoints) {
                cp = .signed(height: cp.height, blockHash: cp.blockHash, stateRoot: Digest.sha256(cp.stateRoot.bytes), by: key,
                             replica: id, cluster: cluster)
            }
            message = .checkpoint(cp)
        case var .viewChange(vc) where vc.replica == id:
            if behaviours.contains(.forgedPreparedCertificate) { vc = forgePreparedCertificate(in: vc) }
            message = .viewChange(vc)
        case var .newView(nv) where nv.replica == id:
            if behaviours.contains(.newViewDropsPrepared), !nv.proposals.isEmpty { nv.proposals.removeLast() }
            if behaviours.contains(.newViewInventsRequest) {
                let top = nv.proposals.last
                let header = BlockHeader(clusterID: cluster, height: (top?.height ?? nv.viewChanges.map(\.checkpointHeight).max() ?? 0) + 1,
                                         view: nv.view, timestampMs: top?.header.timestampMs ?? 0, proposer: id,
                                         prevBlockHash: top?.blockHash ?? .zero, txRoot: Block.txRoot(of: [], cluster: cluster),
                                         historyRoot: .zero)
                nv.proposals.append(.signed(view: nv.view, header: header, by: key, replica: id, cluster: cluster))
            }
            message = .newView(.signed(view: nv.view, viewChanges: nv.viewChanges, proposals: nv.proposals, by: key,
                                       replica: id, cluster: cluster))
        default:
            break
        }
        if behaviours.contains(.impersonate) { message = impersonating(message) }
        if behaviours.contains(.invalidSignatures) { message = withBrokenSignature(message) }
        return message
    }

    /// `pp` with its header changed by `change` and signed again with this replica's key.
    func resign(_ pp: PrePrepare, _ change: (inout BlockHeader) -> Void) -> PrePrepare {
        var header = pp.block.header
        change(&header)
        return .signed(view: pp.view, block: Block(header: header, requests: pp.block.requests), by: key, replica: pp.replica,
                       cluster: cluster)
    }

    /// A batch whose first request's operation was changed after its client signed it (or,
    /// for an empty batch, a request with no valid signature at all); the txRoot is recomputed
    /// so that only the client signature is wrong.
    func forgeRequest(in pp: PrePrepare) -> PrePrepare {
        var requests = pp.block.requests
        if requests.isEmpty {
            requests = [Request(client: key.publicKey, requestID: 1, operation: .put(key: Array("forged".utf8), value: [1]),
                                signature: .zero)]
        } else {
            requests[0].operation = .put(key: Array("forged".utf8), value: Array("by replica \(id)".utf8))
        }
        var header = pp.block.header
        header.txRoot = Block.txRoot(of: requests, cluster: cluster)
        return .signed(view: pp.view, block: Block(header: header, requests: requests), by: key, replica: pp.replica,
                       cluster: cluster)
    }

    /// The pre-prepare with one more request, signed by this replica's key as a client's. Its
    /// id is the height, so every backup gets the same block, and a later block's is newer.
    func addUnauthorizedRequest(to pp: PrePrepare) -> PrePrepare {
        let theft = Request.signed(by: key, cluster: cluster, requestID: pp.height,
                                   operation: .add(key: Array("acct/0/b".utf8), delta: -1_000_000, min: .min, max: .max))
        let requests = pp.block.requests + [theft]
        var header = pp.block.header
        header.txRoot = Block.txRoot(of: requests, cluster: cluster)
        return .signed(view: pp.view, block: Block(header: header, requests: requests), by: key, replica: pp.replica,
                       cluster: cluster)
    }

    /// A view-change claiming a block prepared just above its checkpoint, with a pre-prepare
    /// and prepares this replica signed itself in the names of others.
    func forgePreparedCertificate(in vc: ViewChange) -> ViewChange {
        let height = vc.checkpointHeight + 1
        let header = BlockHeader(clusterID: cluster, height: height, view: vc.newView - 1, timestampMs: 0,
                                 proposer: config.primary(of: vc.newView - 1), prevBlockHash: .zero,
                                 txRoot: Block.txRoot(of: [], cluster: cluster), historyRoot: .zero)
        let block = Block(header: header, requests: [])
        let pp = PrePrepare.signed(view: vc.newView - 1, block: block, by: key, replica: config.primary(of: vc.newView - 1),
                                   cluster: cluster)
        let prepares = others.prefix(2 * config.f).map { other in
            Prepare.signed(view: pp.view, height: height, blockHash: pp.blockHash, by: key, replica: other, cluster: cluster)
        }
        let prepared = [PreparedCertificate(proposal: pp.proposal, prepares: Array(prepares))]
            + vc.prepared.filter { $0.height != height }
        return .signed(newView: vc.newView, checkpoint: vc.checkpoint, prepared: prepared, by: key, replica: id, cluster: cluster)
    }

    /// The message with its sender set to the next replica, signed with this replica's key.
    func impersonating(_ message: Message) -> Message {
        let victim = others[0]
        switch message {
        case let .prepare(p):
            return .prepare(.signed(view: p.view, height: p.height, blockHash: p.blockHash, by: key, replica: victim, cluster: cluster))
        case let .commit(c):
            return .commit(.signed(view: c.view, height: c.height, blockHash: c.blockHash, by: key, replica: victim, cluster: cluster))
        case let .checkpoint(cp):
            return .checkpoint(.signed(height: cp.height, blockHash: cp.blockHash, stateRoot: cp.stateRoot, by: key, replica: victim,
                                       cluster: cluster))
        case let .viewChange(vc):
            return .viewChange(.signed(newView: vc.newView, checkpoint: vc.checkpoint, prepared: vc.prepared, by: key,
                                       replica: victim, cluster: cluster))
        case let .prePrepare(pp):
            return .prePrepare(.signed(view: pp.view, block: pp.block, by: key, replica: victim, cluster: cluster))
        default:
            return message
        }
    }

    func withBrokenSignature(_ message: Message) -> Message {
        func broken(_ signature: Signature) -> Signature {
            var bytes = signature.bytes
            bytes[0] ^= 1
            return Signature(bytes)!
        }
        switch message {
        case var .prePrepare(pp):
            pp.signature = broken(pp.signature)
            return .prePrepare(pp)
        case var .prepare(p):
            p.signature = broken(p.signature)
            return .prepare(p)
        case var .commit(c):
            c.signature = broken(c.signature)
            return .commit(c)
        case var .checkpoint(cp):
            cp.signature = broken(cp.signature)
            return .checkpoint(cp)
        case var .viewChange(vc):
            vc.signature = broken(vc.signature)
            return .viewChange(vc)
        case var .newView(nv):
            nv.signature = broken(nv.signature)
            return .newView(nv)
        default:
            return message
        }
    }

    /// How long the shell holds `message` back before sending it (0: send now).
    public func delayMs(_ message: Message) -> UInt64 {
        guard behaviours.contains(.slowPrimary), case let .prePrepare(pp) = message, pp.replica == id else { return 0 }
        return config.parameters.viewChangeTimeoutMs * 3 / 8
    }

    /// A state-transfer answer as this replica serves it. With `forgedStateTransfer`, answers
    /// take turns at lying: the first block's first request altered (its txRoot then
    /// mismatches) and the rest cut off; the blocks in reverse order; every block but the last
    /// dropped; nothing at all. With `mutateIntegers`, one block's integers are set to boundary
    /// values.
    /// What this replica tells a rejoining peer of its progress.
    public mutating func progress(_ report: ProgressReport) -> ProgressReport {
        guard behaviours.contains(.lyingProgress) else { return report }
        progressAnswers &+= 1
        var lie = report
        if progressAnswers % 2 == 1 {
            lie.epoch = report.epoch + (1 << 40)
            lie.latest = nil
        } else {
            lie.view = min(report.view + (1 << 40), ProtocolBounds.viewMax)
        }
        return lie
    }

    public mutating func served(_ entries: [LedgerEntry]) -> [LedgerEntry] {
        let entries = behaviours.contains(.mutateIntegers) ? mutatedTransfer(entries) : entries
        guard behaviours.contains(.forgedStateTransfer), var first = entries.first else { return entries }
        servedAnswers &+= 1
        switch servedAnswers % 4 {
        case 1: return Array(entries.reversed())
        case 2: return entries.count > 1 ? [entries[entries.count - 1]] : []
        case 3: return []
        default: break
        }
        var requests = first.block.requests
        if requests.isEmpty {
            var header = first.block.header
            header.timestampMs += 1
            first.block = Block(header: header, requests: requests)
        } else {
            requests[0].operation = .put(key: Array("forged".utf8), value: [0])
            first.block = Block(header: first.block.header, requests: requests)
        }
        return [first]
    }

}
