import BulwarkCore

extension Message {
    /// Checks the signatures this message carries through `verifier`, so that the serial
    /// owner of the core later finds them in the cache. The runtime calls this on I/O threads:
    /// verification runs on all cores while one thread drives consensus. The answers are not
    /// used here; the core decides.
    /// `replica`: the validator the cache is warmed for, which skips the client signatures
    /// it does not verify in a PRE-PREPARE (`ClusterConfig.verifiesInProposal`); nil: all.
    public func preverify(config: ClusterConfig, verifier: SignatureVerifier, replica: ReplicaID? = nil) {
        func check(_ replica: ReplicaID, _ signature: Signature, _ bytes: [UInt8]) {
            if let key = config.validator(replica)?.publicKey { _ = verifier.isValid(signature, by: key, for: bytes) }
        }
        let cluster = config.clusterID
        switch self {
        case let .request(request):
            _ = verifier.isValid(request.signature, by: request.client, for: request.signedBytes(cluster: cluster))
        case let .prePrepare(pp):
            check(pp.replica, pp.signature, pp.signedBytes(cluster))
            for request in pp.block.requests where replica.map({ config.verifiesInProposal(request, replica: $0) }) ?? true {
                _ = verifier.isValid(request.signature, by: request.client, for: request.signedBytes(cluster: cluster))
            }
        case let .prepare(p): check(p.replica, p.signature, p.signedBytes(cluster))
        case let .commit(c): check(c.replica, c.signature, c.signedBytes(cluster))
        case let .checkpoint(c): check(c.replica, c.signature, c.signedBytes(cluster))
        case .checkpointProof, .commitProof, .viewChange, .newView:
            break  // rare: verified by the core when they arrive
        }
    }
}
