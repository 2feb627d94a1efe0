import BulwarkCore

/// A client that attacks the cluster instead of using it (issue list: bad signatures, a reused
/// request id with another operation, one id with different operations to different replicas,
/// oversized requests, floods). Each round is one attack, in a fixed rotation; the simulator and
/// `bulwark-byzantine client` both play these rounds, so the same attacks run in simulation and
/// against real processes. None of this may break safety or stop honest clients.
public struct ClientAttack: Sendable {
    public enum Kind: String, CaseIterable, Sendable {
        case badSignature = "bad-signature"
        case reusedID = "reused-id"
        case splitRequest = "split-request"
        case oversized
        case flood
    }

    /// One request to one replica (0-based index).
    public struct Send: Sendable {
        public var request: Request
        public var replica: Int
    }

    let key: PrivateKey
    public var client: PublicKey { key.publicKey }
    let cluster: ClusterID
    let parameters: ProtocolParameters
    let replicas: Int
    /// The highest request id signed so far (validly signed requests may be ordered).
    public private(set) var lastID: UInt64
    public private(set) var round = 0

    /// `firstID` lets a real client start above ids an earlier run of the same key used.
    public init(key: PrivateKey, config: ClusterConfig, firstID: UInt64 = 0) {
        self.key = key
        cluster = config.clusterID
        parameters = config.parameters
        replicas = config.n
        lastID = firstID
    }

    mutating func signed(_ id: UInt64, _ operation: LedgerOperation) -> Request {
        lastID = max(lastID, id)
        return Request.signed(by: key, cluster: cluster, requestID: id, operation: operation)
    }

    func toAll(_ request: Request) -> [Send] { (0..<replicas).map { Send(request: request, replica: $0) } }

    /// The next round's attack and what it sends, in order.
    public mutating func next() -> (kind: Kind, sends: [Send]) {
        round += 1
        // Its own keys, so honest clients' histories stay theirs alone.
        let key = Array("m\(round % 6)".utf8)
        switch round % 5 {
        case 0:
            // A signature that does not verify: signed over one operation, carrying another.
            let id = lastID + 1
            var request = Request.signed(by: self.key, cluster: cluster, requestID: id, operation: .put(key: key, value: [1]))
            request.operation = .delete(key: key)
            return (.badSignature, toAll(request))
        case 1:
            // A new request, then the same id with another operation.
            let id = lastID + 1
            let first = signed(id, .put(key: key, value: [2]))
            let second = signed(id, .delete(key: key))
            return (.reusedID, toAll(first) + toAll(second))
        case 2:
            // One id, a different operation for each replica.
            let id = lastID + 1
            let sends = (0..<replicas).map { r in Send(request: signed(id, .put(key: key, value: [UInt8(truncatingIfNeeded: r)])), replica: r) }
            return (.splitRequest, sends)
        case 3:
            // Bigger than any request may be.
            let big = signed(lastID + 1, .put(key: key, value: Array(repeating: 7, count: parameters.requestBytesMax + 1)))
            return (.oversized, toAll(big))
        default:
            // A flood of valid requests at once.
            let first = lastID + 1
            let sends = (first..<(first + 40)).flatMap { id in toAll(signed(id, .put(key: key, value: Array("flood\(id)".utf8)))) }
            return (.flood, sends)
        }
    }
}
