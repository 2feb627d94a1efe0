/// One replica's signature inside a certificate.
public struct Vote: Hashable, Sendable {
    public var replica: ReplicaID
    public var signature: Signature

    public init(replica: ReplicaID, signature: Signature) {
        self.replica = replica
        self.signature = signature
    }
}

extension Vote: CanonicalCodable {
    public func encode(to w: inout CanonicalWriter) {
        w.write(replica)
        w.write(signature)
    }

    public init(from r: inout CanonicalReader) throws(CodecError) {
        replica = try r.readUInt16("vote replica")
        signature = try r.readSignature("vote signature")
    }
}

/// Why a certificate does not prove what it claims.
public enum CertificateError: Error, Equatable, Sendable, CustomStringConvertible {
    case unknownSigner(ReplicaID)
    case duplicateSigner(ReplicaID)
    case invalidSignature(ReplicaID)
    case tooFewSigners(have: Int, need: Int)

    public var description: String {
        switch self {
        case let .unknownSigner(id): return "signer \(id) is not a validator of this cluster"
        case let .duplicateSigner(id): return "signer \(id) appears more than once"
        case let .invalidSignature(id): return "signature of replica \(id) does not verify"
        case let .tooFewSigners(have, need): return "\(have) distinct valid signers, quorum is \(need)"
        }
    }
}

extension [Vote] {
    /// Writes votes in canonical order (strictly increasing replica id).
    func encodeCanonical(to w: inout CanonicalWriter) {
        w.write(UInt32(count))
        for vote in self { vote.encode(to: &w) }
    }

    /// Reads votes and rejects any list that is not strictly increasing by replica, so that a
    /// certificate has one encoding and no signer can be counted twice.
    static func decodeCanonical(from r: inout CanonicalReader, _ field: String) throws(CodecError) -> [Vote] {
        let votes = try r.readArray(Vote.self, field, max: CodecLimits.votesMax)
        for (a, b) in zip(votes, votes.dropFirst()) where a.replica >= b.replica {
            throw .invalidValue(field: field, reason: a.replica == b.replica
                ? "replica \(a.replica) signs twice" : "replicas not in increasing order")
        }
        return votes
    }

    /// Checks that at least `config.quorum` distinct validators signed, each signature over the
    /// message `message(replica)` builds. Checks the negative space too: an unknown signer or a
    /// repeated one fails the certificate even if a quorum of others is present, because a
    /// certificate holding either was not made by an honest replica.
    func verifyQuorum(config: ClusterConfig, verifier: SignatureVerifier?,
                      message: (ReplicaID) -> [UInt8]) throws(CertificateError) {
        try checkQuorum(config: config, message: message) { vote, key, bytes in
            verifier?.isValid(vote.signature, by: key, for: bytes) ?? key.isValidSignature(vote.signature, for: bytes)
        }
    }

    /// The quorum rule itself, with the signature check supplied (the auditor's comes from
    /// checks it ran in parallel): each signer a validator of `config`, each once, each
    /// signature valid over `message(replica)` by `isValid`, and at least a quorum of them.
    public func checkQuorum(config: ClusterConfig, message: (ReplicaID) -> [UInt8],
                            isValid: (Vote, PublicKey, [UInt8]) -> Bool) throws(CertificateError) {
        var seen = Set<ReplicaID>()
        for vote in self {
            guard let validator = config.validator(vote.replica) else { throw .unknownSigner(vote.replica) }
            guard seen.insert(vote.replica).inserted else { throw .duplicateSigner(vote.replica) }
            guard isValid(vote, validator.publicKey, message(vote.replica)) else { throw .invalidSignature(vote.replica) }
        }
        guard seen.count >= config.quorum else { throw .tooFewSigners(have: seen.count, need: config.quorum) }
    }
}

/// Proof that a block committed (ARCHITECTURE.md §2): at least a quorum of distinct validators'
/// signatures over `COMMIT(view, height, blockHash)`. Replicas may hold different but equally
/// valid sets of signatures.
public struct CommitCertificate: Hashable, Sendable {
    public var height: Height
    public var view: View
    public var blockHash: Digest
    /// Strictly increasing by replica.
    public var votes: [Vote]

    static let version: UInt8 = 1

    public init(height: Height, view: View, blockHash: Digest, votes: [Vote]) {
        self.height = height
        self.view = view
        self.blockHash = blockHash
        self.votes = votes.sorted { $0.replica < $1.replica }
    }

    /// The bytes replica `replica` signs to commit `blockHash` at (`view`, `height`). The same
    /// message is PBFT's COMMIT, so a certificate is exactly a quorum of COMMIT signatures.
    public static func signedMessage(cluster: ClusterID, view: View, height: Height, blockHash: Digest,
                                     replica: ReplicaID) -> [UInt8] {
        Domain.commit.message(cluster: cluster) { w in
            w.write(view)
            w.write(height)
            w.write(blockHash)
            w.write(replica)
        }
    }

    /// Throws unless a quorum of distinct validators signed; `verifier` lets a caller reuse
    /// signatures it already checked.
    public func verify(config: ClusterConfig, verifier: SignatureVerifier? = nil) throws(CertificateError) {
        try votes.verifyQuorum(config: config, verifier: verifier) { replica in
            CommitCertificate.signedMessage(cluster: config.clusterID, view: view, height: height,
                                            blockHash: blockHash, replica: replica)
        }
    }
}

extension CommitCertificate: CanonicalCodable {
    public func encode(to w: inout CanonicalWriter) {
        w.write(Self.version)
        w.write(height)
        w.write(view)
        w.write(blockHash)
        votes.encodeCanonical(to: &w)
    }

    public init(from r: inout CanonicalReader) throws(CodecError) {
        try r.readVersion("commit certificate", supported: Self.version)
        height = try r.readUInt64("height")
        view = try r.readUInt64("view")
        blockHash = try r.readDigest("blockHash")
        votes = try [Vote].decodeCanonical(from: &r, "commit votes")
    }
}

/// Proof of the state after executing a block (ARCHITECTURE.md §2): at least a quorum of
/// signatures over `CHECKPOINT(height, blockHash, stateRoot)`, PBFT's checkpoint message.
public struct ExecutionCertificate: Hashable, Sendable {
    public var height: Height
    public var blockHash: Digest
    public var stateRoot: Digest
    public var votes: [Vote]

    static let version: UInt8 = 1

    public init(height: Height, blockHash: Digest, stateRoot: Digest, votes: [Vote]) {
        self.height = height
        self.blockHash = blockHash
        self.stateRoot = stateRoot
        self.votes = votes.sorted { $0.replica < $1.replica }
    }

    public static func signedMessage(cluster: ClusterID, height: Height, blockHash: Digest, stateRoot: Digest,
                                     replica: ReplicaID) -> [UInt8] {
        Domain.checkpoint.message(cluster: cluster) { w in
            w.write(height)
            w.write(blockHash)
            w.write(stateRoot)
            w.write(replica)
        }
    }

    public func verify(config: ClusterConfig, verifier: SignatureVerifier? = nil) throws(CertificateError) {
        try votes.verifyQuorum(config: config, verifier: verifier) { replica in
            ExecutionCertificate.signedMessage(cluster: config.clusterID, height: height, blockHash: blockHash,
                                               stateRoot: stateRoot, replica: replica)
        }
    }
}

extension ExecutionCertificate: CanonicalCodable {
    public func encode(to w: inout CanonicalWriter) {
        w.write(Self.version)
        w.write(height)
        w.write(blockHash)
        w.write(stateRoot)
        votes.encodeCanonical(to: &w)
    }

    public init(from r: inout CanonicalReader) throws(CodecError) {
        try r.readVersion("execution certificate", supported: Self.version)
        height = try r.readUInt64("height")
        blockHash = try r.readDigest("blockHash")
        stateRoot = try r.readDigest("stateRoot")
        votes = try [Vote].decodeCanonical(from: &r, "checkpoint votes")
    }
}
