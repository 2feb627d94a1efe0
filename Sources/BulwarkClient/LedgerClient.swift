import BulwarkCore
import BulwarkTransport
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

public enum ClientError: Error, CustomStringConvertible {
    case timedOut(requestID: UInt64, replies: Int, needed: Int)
    case undecodableResult

    public var description: String {
        switch self {
        case let .timedOut(id, replies, needed):
            return "no result for request \(id): \(replies) matching replies, \(needed) needed; is the cluster running?"
        case .undecodableResult: return "the replicas' agreed result could not be decoded"
        }
    }
}

/// The client library (DESIGN.md §5): signs requests with the client's key, sends each to
/// every replica, and accepts a result once f+1 replicas sent the same signed reply (so at
/// least one honest replica vouches for it). Re-sends on a timeout.
public final class LedgerClient: Sendable {
    public let config: ClusterConfig
    let key: PrivateKey
    let group: MultiThreadedEventLoopGroup
    /// False when the caller lent the event loops and shuts them down itself.
    let ownsGroup: Bool
    let transport: NIOLockedValueBox<Transport?> = .init(nil)
    let pending = NIOLockedValueBox<[UInt64: Pending]>([:])
    let nextID: NIOLockedValueBox<UInt64>

    struct Pending {
        var replies: [ReplicaID: SignedReply] = [:]
        var continuation: CheckedContinuation<SignedReply, any Error>?
    }

    /// `group` lets many clients in one process share event loops (the caller shuts it down).
    public init(config: ClusterConfig, key: PrivateKey, group: MultiThreadedEventLoopGroup? = nil,
                logger: Logger = Logger(label: "bulwark.client")) {
        self.config = config
        self.key = key
        self.ownsGroup = group == nil
        self.group = group ?? MultiThreadedEventLoopGroup(numberOfThreads: 1)
        // Request ids must grow across runs of the same key: start from the wall clock in µs.
        nextID = .init(UInt64(Date().timeIntervalSince1970 * 1_000_000))
        let transport = Transport(group: self.group, config: config, role: .client(key.publicKey), key: key,
                                  settings: .init(frameBytesMax: config.parameters.frameBytesMax), logger: logger,
                                  onFrame: { [weak self] role, bytes in self?.received(role, bytes) })
        self.transport.withLockedValue { $0 = transport }
    }

    func received(_ role: PeerRole, _ bytes: [UInt8]) {
        guard case let .replica(replica) = role, case let .reply(reply)? = try? ClientFrame(decoding: bytes),
              reply.replica == replica, reply.client == key.publicKey, reply.isValid(config: config) else { return }
        let done = pending.withLockedValue { pending -> (CheckedContinuation<SignedReply, any Error>, SignedReply)? in
            guard var entry = pending[reply.requestID] else { return nil }
            entry.replies[replica] = reply
            let matching = entry.replies.values.filter { $0.result == reply.result && $0.height == reply.height }
            if matching.count >= config.replyQuorum, let continuation = entry.continuation {
                entry.continuation = nil
                pending[reply.requestID] = entry
                return (continuation, reply)
            }
            pending[reply.requestID] = entry
            return nil
        }
        if let (continuation, reply) = done { continuation.resume(returning: reply) }
    }

    /// Orders `operation` through the cluster and returns its result and the height of the
    /// block it executed in.
    public func execute(_ operation: LedgerOperation, timeout: Duration = .seconds(15),
                        retryEvery: Duration = .seconds(1)) async throws -> (OperationResult, Height) {
        let requestID = nextID.withLockedValue { id -> UInt64 in
            id += 1
            return id
        }
        let request = Request.signed(by: key, cluster: config.clusterID, requestID: requestID, operation: operation)
        let frame = ClientFrame.request(request).encoded()
        let transport = self.transport.withLockedValue { $0! }
        let replicas = config.validators.map(\.id)
        pending.withLockedValue { $0[requestID] = Pending() }
        defer { _ = pending.withLockedValue { $0.removeValue(forKey: requestID) } }
        let reply: SignedReply = try await withThrowingTaskGroup(of: SignedReply?.self) { tasks in
            tasks.addTask { [self] in
                try await withCheckedThrowingContinuation { continuation in
                    let early = pending.withLockedValue { pending -> Bool in
                        pending[requestID]?.continuation = continuation
                        return pending[requestID] == nil
                    }
                    if early { continuation.resume(throwing: CancellationError()) }
                }
            }
            tasks.addTask {
                // Send, then re-send to every replica until answered or out of time.
                let deadline = ContinuousClock.now + timeout
                while ContinuousClock.now < deadline {
                    for replica in replicas { transport.send(frame, to: replica) }
                    try await Task.sleep(for: retryEvery)
                }
                return nil
            }
            for try await result in tasks {
                if let result {
                    tasks.cancelAll()
                    return result
                }
                let have = pending.withLockedValue { $0[requestID]?.replies.count ?? 0 }
                let continuation = pending.withLockedValue { state -> CheckedContinuation<SignedReply, any Error>? in
                    let c = state[requestID]?.continuation
                    state[requestID]?.continuation = nil
                    return c
                }
                continuation?.resume(throwing: ClientError.timedOut(requestID: requestID, replies: have, needed: config.replyQuorum))
            }
            throw ClientError.timedOut(requestID: requestID, replies: 0, needed: config.replyQuorum)
        }
        guard let result = try? OperationResult(decoding: reply.result) else { throw ClientError.undecodableResult }
        return (result, reply.height)
    }

    public func shutdown() async {
        await transport.withLockedValue { $0 }?.shutdown()
        if ownsGroup { try? await group.shutdownGracefully() }
    }
}
