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

/// A fast read waiting for the replica to execute `floor`.
struct WaitingFastRead {
    var floor: Height
    var key: [UInt8]
    var nonce: UInt64
    var client: PublicKey
    var arrivedMs: UInt64
}

/// Fast reads (SPEC.md §8.6): a `get` answered from the executed state without ordering, by a
/// replica that has executed every height it sent a COMMIT for.
extension ReplicaShell {
    /// A read waits at most this long for the state to reach its floor; its client has ordered
    /// the read long before.
    static let fastReadWaitMs: UInt64 = 5000

    func fastRead(key: [UInt8], nonce: UInt64, from client: PublicKey) {
        guard network.isReading(client: client) else { return notify(.dropped(.clientNotReading)) }
        let floor = core.fastReadFloor
        if ledger.tip.height >= floor {
            do { try makeDurable(through: ledger.tip.height) } catch { return fault("storage failed: \(error)") }
            return answerFastRead(key: key, nonce: nonce, to: client)
        }
        let now = clock.nowMs
        waitingFastReads.removeAll { now >= $0.arrivedMs + Self.fastReadWaitMs }
        guard waitingFastReads.count < Self.fastReadsWaitingMax else { return notify(.dropped(.rateLimited)) }
        waitingFastReads.append(WaitingFastRead(floor: floor, key: key, nonce: nonce, client: client, arrivedMs: now))
    }

    /// Answers the waiting fast reads whose floor the executed state reached, once the blocks
    /// they read are durable (a value a client read never disappears in a crash).
    func answerWaitingFastReads() throws {
        let height = ledger.tip.height
        guard waitingFastReads.contains(where: { $0.floor <= height }) else { return }
        try makeDurable(through: height)
        let ready = waitingFastReads.filter { $0.floor <= height }
        waitingFastReads.removeAll { $0.floor <= height }
        for read in ready { answerFastRead(key: read.key, nonce: read.nonce, to: read.client) }
    }

    private func answerFastRead(key: [UInt8], nonce: UInt64, to client: PublicKey) {
        let result = ledger.state.readWithoutOrdering(key, client: client)
        let answer = ClientFrame.fastReadAnswer(nonce: nonce, height: ledger.tip.height, result: result.encoded())
        network.send(answer.encoded(), toClient: client)
    }
}
