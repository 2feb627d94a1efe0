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

extension ClusterConfig {
    /// How many validators may take a request in a PRE-PREPARE without verifying its client's
    /// signature (SPEC.md §14.1): q − f − 1, so that every other validator does, 2f+1 of 3f+1.
    /// A block prepares only with a quorum of q validators behind it (the PRE-PREPARE and q − 1
    /// PREPAREs); any q of them include at least q − (q − f − 1) = f + 1 verifiers, one of them
    /// honest, which prepares only if every signature holds.
    public var signatureTrustersPerRequest: Int { quorum - f - 1 }

    /// Whether validator `replica` verifies `request`'s signature when it arrives inside a
    /// PRE-PREPARE (SPEC.md §14.1). The validators that do not are the
    /// `signatureTrustersPerRequest` positions after `s mod n`, where s is the first 8 bytes of
    /// the signature, big-endian: spread over the validators, the same at every replica. A
    /// replica not in the configuration verifies everything.
    public func verifiesInProposal(_ request: Request, replica: ReplicaID) -> Bool {
        guard let position = validators.firstIndex(where: { $0.id == replica }), n > 0 else { return true }
        let seed = request.signature.raw.withUnsafeBytes { bytes in bytes.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) } }
        let first = Int(seed % UInt64(n))
        let offset = (position - first + n) % n
        return offset >= signatureTrustersPerRequest
    }
}
