import BulwarkConsensus
import BulwarkCore
import Foundation

/// Decodes and pre-checks the frames that arrive for a replica. Thread-safe, so a driver runs
/// it where frames arrive (the NIO driver: on every I/O thread, so signature checks use every
/// core) before the shell's serial loop sees anything. Its configuration only warms the
/// signature cache: the shell's core checks every signature against its own epoch.
public final class ShellIntake: @unchecked Sendable {
    public let verifier: SignatureVerifier
    let cluster: ClusterID
    private let lock = NSLock()
    private var current: ClusterConfig

    /// The replica whose frames these are, when one shell owns the intake: its pre-checks skip
    /// the client signatures it does not verify in a PRE-PREPARE (SPEC.md §14.1).
    let replica: ReplicaID?

    public init(config: ClusterConfig, verifier: SignatureVerifier, replica: ReplicaID? = nil) {
        current = config
        cluster = config.clusterID
        self.verifier = verifier
        self.replica = replica
    }

    /// The configuration whose validators' signatures are pre-checked.
    public var config: ClusterConfig { lock.withLock { current } }

    /// A new epoch began: the driver passes on what the shell gave `ShellNetwork.configure`.
    public func update(_ config: ClusterConfig) { lock.withLock { current = config } }

    /// What became of a frame.
    public enum Outcome: Sendable {
        case accepted(ShellInput)
        /// Dropped and counted under `reason` (a client was already told why, where it is owed
        /// an answer).
        case dropped(DropReason)
    }

    /// A frame from replica `peer`, authenticated by the link.
    public func peer(_ bytes: [UInt8], from peer: ReplicaID) -> Outcome {
        guard let frame = try? PeerFrame(decoding: bytes) else { return .dropped(.undecodablePeerFrame) }
        guard case let .consensus(epoch, message) = frame else { return .accepted(.peerFrame(frame, from: peer)) }
        // The sender inside a signed message must be the authenticated peer.
        if let sender = message.sender, sender != peer { return .dropped(.senderMismatch) }
        message.preverify(config: config, verifier: verifier, replica: replica)
        return .accepted(.consensus(message, epoch: epoch, from: peer))
    }

    /// A frame from `client`, authenticated by the link: a request must carry the client's
    /// valid signature (checked here, before ordering). A frame refused here is answered
    /// through `network` with the refusal (SPEC.md §8.5), whichever driver runs the shell.
    public func client(_ bytes: [UInt8], from client: PublicKey, answeringThrough network: any ShellNetwork) -> Outcome {
        let request: Request
        switch try? ClientFrame(decoding: bytes) {
        case let .request(r)?: request = r
        case let .proveRequest(key, nonce)?: return .accepted(.proveRequest(key: key, nonce: nonce, client: client))
        case let .fetchBlocks(from, to)?: return .accepted(.fetchBlocks(from: from, to: to, client: client))
        case let .epochProofsRequest(from, nonce)?: return .accepted(.epochProofsRequest(from: from, nonce: nonce, client: client))
        case let .fastRead(key, nonce)?: return .accepted(.fastRead(key: key, nonce: nonce, client: client))
        default:
            network.send(ClientFrame.refused(requestID: 0, .malformed).encoded(), toClient: client)
            return .dropped(.undecodableClientFrame)
        }
        guard verifier.isValid(request.signature, by: request.client, for: request.signedBytes(cluster: cluster)) else {
            network.send(ClientFrame.refused(requestID: request.requestID, .badSignature).encoded(), toClient: client)
            return .dropped(.badClientSignature)
        }
        return .accepted(.event(.clientRequest(request)))
    }
}
