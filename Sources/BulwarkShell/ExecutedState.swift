import BulwarkConsensus
import BulwarkCore
import BulwarkStateMachine

/// What the core needs of the state machine, derived where the state machine lives: the core
/// itself knows only replies, request ids and the policy's admissions.
extension Reply {
    /// The replies executing `block` gives, from the state machine's outcome for each of its
    /// requests: the one place replies are derived (a stale request gets none).
    public static func replies(to block: Block, outcomes: [KeyValueState.Outcome]) -> [Reply] {
        zip(block.requests, outcomes).compactMap { request, outcome in
            switch outcome {
            case let .executed(result), let .duplicate(result):
                return Reply(client: request.client, requestID: request.requestID, height: block.height, result: result.encoded())
            case .stale:
                return nil
            }
        }
    }
}

extension ExecutedClients {
    /// What `state` says of its clients.
    public init(_ state: KeyValueState) {
        self.init(lastRequestIDs: state.clients.mapValues(\.requestID), policy: state.policyIndex)
    }
}

extension KeyValueState {
    /// `client`'s newest executed request, as the reply a retransmission of it gets.
    public func lastReply(of client: PublicKey) -> Reply? {
        clients[client].map { Reply(client: client, requestID: $0.requestID, height: $0.height, result: $0.result.encoded()) }
    }
}
