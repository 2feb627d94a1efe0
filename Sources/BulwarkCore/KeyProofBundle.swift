/// A verified read as `bulwark prove` returns and writes it: a key proof and the execution
/// certificate of the state it is about. Anyone holding the cluster configuration can check
/// it; no replica is trusted.
public struct KeyProofBundle: Hashable, Sendable {
    public var proof: KeyProof
    public var certificate: ExecutionCertificate

    public init(proof: KeyProof, certificate: ExecutionCertificate) {
        self.proof = proof
        self.certificate = certificate
    }

    public enum Failure: Error, Equatable, Sendable, CustomStringConvertible {
        case certificate(CertificateError)
        case heightMismatch(proof: Height, certificate: Height)
        case proof(KeyProof.Failure)
        case unreadable(String)

        public var description: String {
            switch self {
            case let .certificate(error): return "the execution certificate is invalid: \(error)"
            case let .heightMismatch(proof, certificate):
                return "the proof is for height \(proof), the certificate for \(certificate)"
            case let .proof(error): return "the key proof is invalid: \(error)"
            case let .unreadable(reason): return "unreadable proof: \(reason)"
            }
        }
    }

    /// Checks the certificate against the cluster and the proof against the certified root;
    /// returns the proven read.
    @discardableResult
    public func verify(config: ClusterConfig, verifier: SignatureVerifier? = nil) throws(Failure) -> KeyProof {
        do { try certificate.verify(config: config, verifier: verifier) } catch { throw .certificate(error) }
        guard proof.height == certificate.height else {
            throw .heightMismatch(proof: proof.height, certificate: certificate.height)
        }
        do { try proof.verify(stateRoot: certificate.stateRoot, cluster: config.clusterID) } catch { throw .proof(error) }
        return proof
    }

    /// The file format: two lines, `key-proof HEX` and `execution-certificate HEX`.
    public var fileText: String {
        "key-proof \(Hex.encode(proof.encoded()))\nexecution-certificate \(Hex.encode(certificate.encoded()))\n"
    }

    public init(fileText: String) throws(Failure) {
        var proofHex: String?
        var certificateHex: String?
        for line in fileText.split(separator: "\n") {
            let parts = line.split(separator: " ", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { continue }
            if parts[0] == "key-proof" { proofHex = parts[1] }
            if parts[0] == "execution-certificate" { certificateHex = parts[1] }
        }
        guard let proofHex, let proofBytes = Hex.decode(proofHex), let certificateHex,
              let certificateBytes = Hex.decode(certificateHex) else {
            throw .unreadable("expected lines 'key-proof HEX' and 'execution-certificate HEX'")
        }
        do {
            self.init(proof: try KeyProof(decoding: proofBytes), certificate: try ExecutionCertificate(decoding: certificateBytes))
        } catch {
            throw .unreadable("\(error)")
        }
    }
}

extension KeyProofBundle: CanonicalCodable {
    public func encode(to w: inout CanonicalWriter) {
        w.write(proof)
        w.write(certificate)
    }

    public init(from r: inout CanonicalReader) throws(CodecError) {
        self.init(proof: try r.read(KeyProof.self), certificate: try r.read(ExecutionCertificate.self))
    }
}

/// The authenticated map as it was after a past height. With the key histories of any later
/// state it proves what every key held at that height, so a replica keeps one per certified
/// checkpoint at the cost of a reference (the map's nodes are shared, never copied).
public struct ProvableState: Sendable {
    public let cluster: ClusterID
    public let height: Height
    let map: AuthenticatedMap

    public init(cluster: ClusterID, height: Height, map: AuthenticatedMap) {
        self.cluster = cluster
        self.height = height
        self.map = map
    }

    /// The state root at `height`, which an execution certificate for it must certify.
    public var stateRoot: Digest { StateHashing.stateRoot(cluster: cluster, height: height, mapRoot: map.rootHash) }
}


/// See `KeyValueState.proofSource(for:)`.
public struct ProofSource: Sendable {
    public let key: [UInt8]
    /// The height of the state it was taken from: proofs are about that height or below.
    let height: Height
    let head: UInt64?
    let store: any KeyHistoryStore

    public init(key: [UInt8], height: Height, head: UInt64?, store: any KeyHistoryStore) {
        self.key = key
        self.height = height
        self.head = head
        self.store = store
    }

    /// A proof of what `key` held at `past.height`; `past` must come from the same state's history.
    public func prove(at past: ProvableState) throws(KeyHistoryError) -> KeyProof {
        precondition(past.height <= height, "a proof about a height the state had not reached")
        // The version of the key in force after `past.height`: its newest entry at or below it.
        var last: KeyHistoryEntry?
        var next = head
        while let position = next {
            let (entry, previous) = try store.read(at: position)
            if entry.height <= past.height {
                last = entry
                break
            }
            next = previous
        }
        let value = last?.value
        return KeyProof(key: key, value: value, version: value == nil ? 0 : last!.height, height: past.height,
                        mapRoot: past.map.rootHash, proof: past.map.proof(for: StateHashing.recordKeyHash(key)))
    }
}
