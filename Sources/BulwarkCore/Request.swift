/// A client's signed request (ARCHITECTURE.md §2). `requestID` is strictly increasing per client;
/// the ledger executes each (client, requestID) at most once.
public struct Request: Hashable, Sendable {
    public var client: PublicKey
    public var requestID: UInt64
    public var operation: LedgerOperation
    public var signature: Signature

    static let version: UInt8 = 1

    public init(client: PublicKey, requestID: UInt64, operation: LedgerOperation, signature: Signature) {
        self.client = client
        self.requestID = requestID
        self.operation = operation
        self.signature = signature
    }

    /// A request signed by `key` for `cluster`.
    public static func signed(by key: PrivateKey, cluster: ClusterID, requestID: UInt64, operation: LedgerOperation) -> Request {
        var request = Request(client: key.publicKey, requestID: requestID, operation: operation, signature: .zero)
        request.signature = key.sign(.request, cluster: cluster, body: request.encodeSignedBody)
        return request
    }

    /// What the client signs: everything but the signature.
    public func encodeSignedBody(_ w: inout CanonicalWriter) {
        w.write(client)
        w.write(requestID)
        w.write(operation)
    }

    /// The exact bytes the client's signature covers.
    public func signedBytes(cluster: ClusterID) -> [UInt8] {
        Domain.request.message(cluster: cluster, body: encodeSignedBody)
    }

    public func hasValidSignature(cluster: ClusterID) -> Bool {
        client.isValidSignature(signature, domain: .request, cluster: cluster, body: encodeSignedBody)
    }

    /// The request's identity in the ledger: the leaf input of a block's `txRoot`. Covers the
    /// signature too, and Ed25519 signatures as libsodium checks them are not malleable, so a
    /// valid request has exactly one digest.
    public func digest(cluster: ClusterID) -> Digest {
        Digest.tagged(.requestDigest, cluster: cluster, encoded())
    }
}

extension Request: CanonicalCodable {
    public func encode(to w: inout CanonicalWriter) {
        w.write(Self.version)
        encodeSignedBody(&w)
        w.write(signature)
    }

    public init(from r: inout CanonicalReader) throws(CodecError) {
        try r.readVersion("request", supported: Self.version)
        client = try r.readPublicKey("request client")
        requestID = try r.readUInt64("request id")
        operation = try r.read(LedgerOperation.self)
        signature = try r.readSignature("request signature")
    }
}
