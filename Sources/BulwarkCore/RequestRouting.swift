/// Where a client sends a request, and when it sends it again (SPEC.md §8.5), as a pure value
/// that `LedgerClient` and the simulated clients both follow.
///
/// PBFT §4.1: a client sends a request to the primary it believes current; only when no result
/// arrives in time does it send the request to every replica, whose backups then hold it, relay
/// it to the primary and start their request timers, so a primary that censors it is replaced.
/// The first wait is short (`broadcastAfterMs`, an eighth of the view-change timeout): a
/// primary that holds requests back gains at most that much before the backups hold them too
/// and their turnaround monitor times it. Every later round goes to every validator.
///
/// The believed view is a hint, never a matter of safety: each reply names its replica's
/// view, and the client believes the highest view that f+1 validators of its epoch reported
/// (at least one of them honest), so no f replicas can steer it to a primary of their choosing
/// for longer than one short wait per request. Each validator's newest report counts, so the
/// view can also go down (a new epoch starts again at view 0).
public struct RequestRouting: Sendable {
    /// Each validator's newest reported view.
    var reported: [ReplicaID: View] = [:]
    /// The view the client believes current.
    public private(set) var view: View = 0

    public init() {}

    /// A reply from `replica` reported `view`.
    public mutating func heard(view reportedView: View, from replica: ReplicaID, config: ClusterConfig) {
        guard config.validator(replica) != nil else { return }
        reported[replica] = reportedView
        let views = reported.filter { config.validator($0.key) != nil }.map(\.value).sorted(by: >)
        if views.count >= config.replyQuorum { view = views[config.replyQuorum - 1] }
    }

    /// The validators a request goes to in `round` (0: the first sending).
    public func targets(round: Int, config: ClusterConfig) -> [ReplicaID] {
        round == 0 ? [config.primary(of: view)] : config.validators.map(\.id)
    }

    /// How long the first sending waits for a result before the request goes to everyone.
    public static func broadcastAfterMs(_ config: ClusterConfig) -> UInt64 {
        max(1, config.parameters.viewChangeTimeoutMs / 8)
    }
}
