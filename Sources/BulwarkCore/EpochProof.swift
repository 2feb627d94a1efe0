/// How epoch e+1's configuration follows from epoch e's, checked against epoch e's
/// configuration alone (SPEC.md §18.5): the execution certificate of e's last block, signed by
/// e's validators, and the governance the certified state holds, with its path in the map. A
/// client holding only cluster.json follows a chain of these to the configuration in force;
/// no replica is trusted, since each step is certified by a quorum of the epoch before it.
public struct EpochProof: Hashable, Sendable {
    public var certificate: ExecutionCertificate
    public var governance: GovernanceProof

    public init(certificate: ExecutionCertificate, governance: GovernanceProof) {
        self.certificate = certificate
        self.governance = governance
    }

    public enum Failure: Error, Equatable, Sendable, CustomStringConvertible {
        case certificate(CertificateError)
        case heightMismatch(proof: Height, certificate: Height)
        case proof(KeyProof.Failure)
        /// The certified state is not the one that ended `epoch`.
        case notTheBoundary(epoch: UInt64)

        public var description: String {
            switch self {
            case let .certificate(error): return "the execution certificate is invalid: \(error)"
            case let .heightMismatch(proof, certificate):
                return "the governance proof is for height \(proof), the certificate for \(certificate)"
            case let .proof(error): return "the governance proof is invalid: \(error)"
            case let .notTheBoundary(epoch): return "the certified state is not the one that ended epoch \(epoch)"
            }
        }
    }

    /// Checks this step against `config`, the configuration of `epoch`, and returns the
    /// configuration of epoch + 1.
    public func verify(from config: ClusterConfig, epoch: UInt64,
                       verifier: SignatureVerifier? = nil) throws(Failure) -> ClusterConfig {
        do { try certificate.verify(config: config, verifier: verifier) } catch { throw .certificate(error) }
        guard governance.height == certificate.height else {
            throw .heightMismatch(proof: governance.height, certificate: certificate.height)
        }
        do { try governance.verify(stateRoot: certificate.stateRoot, cluster: config.clusterID) } catch {
            throw .proof(error)
        }
        // The state right after epoch `epoch`'s last block: the next epoch, which began at the
        // next height, with `epoch` ending at the certified one. (Counts are compared before
        // any index is taken, and nothing is added to a received height.)
        let next = governance.governance
        guard epoch < UInt64.max, next.epoch == epoch + 1, UInt64(next.epochEnds.count) == next.epoch,
              next.epochEnds.last == certificate.height, certificate.height < Height.max,
              next.firstHeight == certificate.height + 1 else {
            throw .notTheBoundary(epoch: epoch)
        }
        return next.config
    }

    /// At most this many steps travel in one frame.
    public static let perFrameMax = 16

    /// The newest epoch that replicas' answers prove, starting from the epoch a client knows
    /// (SPEC.md §18.5): of each answer, the steps that verify one after the other from
    /// `known`; the longest such chain wins (the first of equal length, in the order given).
    /// Nil when no answer proves a step. A pure rule: `LedgerClient` and the simulated clients
    /// follow epochs by it alike.
    public static func newestProven(from known: (epoch: UInt64, config: ClusterConfig), answers: [[EpochProof]],
                                    verifier: SignatureVerifier? = nil) -> (epoch: UInt64, config: ClusterConfig)? {
        var best: [(epoch: UInt64, config: ClusterConfig)] = []
        for steps in answers where steps.count > best.count {
            var chain: [(epoch: UInt64, config: ClusterConfig)] = []
            var current = known
            for step in steps {
                guard let next = try? step.verify(from: current.config, epoch: current.epoch, verifier: verifier) else { break }
                // `verify` checked the step ends `current.epoch` and begins the epoch it names.
                current = (step.governance.governance.epoch, next)
                chain.append(current)
            }
            if chain.count > best.count { best = chain }
        }
        return best.last
    }
}

extension EpochProof: CanonicalCodable {
    public func encode(to w: inout CanonicalWriter) {
        w.write(certificate)
        w.write(governance)
    }

    public init(from r: inout CanonicalReader) throws(CodecError) {
        self.init(certificate: try r.read(ExecutionCertificate.self), governance: try r.read(GovernanceProof.self))
    }
}
