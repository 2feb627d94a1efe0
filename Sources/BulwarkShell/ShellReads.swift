import BulwarkConsensus
import BulwarkCore
import BulwarkStateMachine

/// Verified reads (`bulwark prove`): a key's value and history with a proof against the
/// newest certified checkpoint's state root.
extension ReplicaShell {
    /// Answers a verified read. Only taking the key's place in the state happens on the loop;
    /// the proof is built and sent by `workers`, like state-transfer answers, within the same
    /// bound on waiting work.
    func answerProof(key: [UInt8], nonce: UInt64, to client: PublicKey) {
        guard network.isReading(client: client) else { return notify(.dropped(.clientNotReading)) }
        guard proofRequests.allow(client, nowMs: clock.nowMs) else {
            notify(.dropped(.rateLimited))
            let reason = "replica \(id) is rate-limiting proof requests from this client; try again shortly"
            return network.send(ClientFrame.proofUnavailable(nonce: nonce, reason: reason).encoded(), toClient: client)
        }
        guard let (provable, certificate) = ledger.certified else {
            let reason = "replica \(id) has no certified checkpoint yet (the first is at height \(config.parameters.checkpointInterval))"
            return network.send(ClientFrame.proofUnavailable(nonce: nonce, reason: reason).encoded(), toClient: client)
        }
        // Only a client the policy lets read the key gets its value, proven or not.
        if let denial = ledger.state.mayReceive(.key(key), client: client) {
            return network.send(ClientFrame.proofUnavailable(nonce: nonce, reason: denial.description).encoded(), toClient: client)
        }
        let source = ledger.state.proofSource(for: key)
        let network = Unchecked(network), logger = self.logger, id = self.id
        let admitted = workers.serve(.client) {
            let frame: ClientFrame
            do {
                frame = .proof(nonce: nonce, KeyProofBundle(proof: try source.prove(at: provable), certificate: certificate))
            } catch {
                logger.error("cannot read a key's history for a proof", metadata: ["error": "\(error)"])
                frame = .proofUnavailable(nonce: nonce, reason: "replica \(id) cannot read its key history: \(error)")
            }
            network.value.send(frame.encoded(), toClient: client)
        }
        if !admitted { notify(.dropped(.rateLimited)) }
    }
}

extension ReplicaShell {
    /// Tells a client how the configuration changed after epoch `from` (SPEC.md §18.5): the
    /// proofs this replica holds, in order, as many as fit one frame. The client checks each
    /// against the configuration before it, so nothing here needs to be trusted.
    func answerEpochProofs(from: UInt64, nonce: UInt64, to client: PublicKey) {
        guard network.isReading(client: client) else { return notify(.dropped(.clientNotReading)) }
        guard proofRequests.allow(client, nowMs: clock.nowMs) else {
            notify(.dropped(.rateLimited))
            let reason = "replica \(id) is rate-limiting proof requests from this client; try again shortly"
            return network.send(ClientFrame.proofUnavailable(nonce: nonce, reason: reason).encoded(), toClient: client)
        }
        var proofs = ledger.epochProofs(from: from, max: EpochProof.perFrameMax)
        var frame = ClientFrame.epochProofs(nonce: nonce, proofs).encoded()
        // Each step is a configuration and a certificate; a frame holds what fits, and the
        // client asks again from where it got to.
        while frame.count > config.parameters.frameBytesMax, !proofs.isEmpty {
            proofs.removeLast()
            frame = ClientFrame.epochProofs(nonce: nonce, proofs).encoded()
        }
        network.send(frame, toClient: client)
    }
}
