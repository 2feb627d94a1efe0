import BulwarkConsensus
import BulwarkCore
import BulwarkStorage

/// State transfer (ARCHITECTURE.md §4): a replica that fell behind fetches committed blocks from
/// peers, one peer at a time, and trusts none of them: every block is checked (link to the
/// chain, commit certificate, client signatures) before it is stored and executed.
extension ReplicaShell {
    struct Transfer {
        var target: Height
        var checkpoint: CheckpointProof?
        /// Which peer is asked: the attempt's turn in the rotation over the others.
        var attempt: Int
        /// The state after each checkpoint height executed on the way.
        var executed: [ExecutedCheckpoint] = []
    }

    /// Where the state transfer under way is headed, if one is.
    public var transferTarget: Height? { transfer?.target }

    /// Starts (or extends) a transfer to `target`; the event that ends it at once when the
    /// ledger already reaches the target.
    func startTransfer(to target: Height, checkpoint: CheckpointProof?) -> Event? {
        if let transfer, transfer.target >= target { return nil }
        if transfer == nil {
            logger.info("state transfer started", metadata: ["height": "\(height)", "target": "\(target)"])
            notify(.stateTransferStarted(from: height, target: target))
        }
        transfer = Transfer(target: target, checkpoint: checkpoint, attempt: transfer?.attempt ?? 0,
                            executed: transfer?.executed ?? [])
        if let event = transferOvertaken() { return event }
        askForBlocks()
        return nil
    }

    /// Asks this attempt's peer for the blocks after the ledger's end; the retry timer moves to
    /// the next peer if this one makes no progress in time.
    func askForBlocks() {
        guard let transfer else { return }
        let others = config.validators.map(\.id).filter { $0 != id }
        let peer = others[(Int(id) + transfer.attempt) % others.count]
        network.send(PeerFrame.fetchBlocks(from: height + 1, to: transfer.target).encoded(), to: peer, afterMs: 0)
        clock.schedule(.transferRetry(attempt: transfer.attempt), afterMs: config.parameters.stateTransferTimeoutMs)
    }

    func retryTransfer(attempt: Int) {
        guard !stopped, faulted == nil, var current = transfer, current.attempt == attempt else { return }
        if height >= current.target {
            notify(.transferOvertaken(target: current.target))
            return finishTransfer(current)
        }
        current.attempt += 1
        transfer = current
        askForBlocks()
    }

    /// Blocks from a peer: every one is checked here; an answer that fails a check, or brings
    /// nothing new, ends that peer's turn and the next peer is asked.
    func receiveTransferred(_ entries: [LedgerEntry], from peer: ReplicaID) {
        guard !stopped, faulted == nil, var current = transfer else { return }
        let start = height
        do {
            for entry in entries where entry.block.height == height + 1 {
                // Link, epoch, commit certificate and client signatures: nothing unverified is stored.
                let checkpoint = try ledger.appendVerified(entry, verifier: verifier)
                if let checkpoint { current.executed.append(checkpoint) }
                notify(.transferredBlock(entry.block.height, stateRoot: checkpoint?.stateRoot))
            }
            try ledger.blockLog.sync()
            try ledger.history.flush()
        } catch let error as LedgerError {
            logger.warning("peer sent an invalid block in state transfer", metadata: ["peer": "\(peer)", "error": "\(error)"])
            return rejectTransfer(from: peer, current)
        } catch {
            return fault("storage failed during state transfer: \(error)")
        }
        transfer = current
        if height >= current.target { return finishTransfer(current) }
        // Nothing new (empty, reordered or stale answer): that peer's turn is over.
        if height == start { return rejectTransfer(from: peer, current) }
        network.send(PeerFrame.fetchBlocks(from: height + 1, to: current.target).encoded(), to: peer, afterMs: 0)
    }

    func rejectTransfer(from peer: ReplicaID, _ current: Transfer) {
        notify(.dropped(.badTransferredBlock))
        notify(.transferRejected(peer: peer))
        var next = current
        next.attempt += 1
        transfer = next
        askForBlocks()
    }

    func finishTransfer(_ current: Transfer) {
        step(transferDone(current))
    }

    /// Ends the transfer: the ledger reached its target, by blocks fetched or by blocks
    /// consensus delivered meanwhile. Either way the core is told, or it would keep waiting.
    func transferDone(_ current: Transfer) -> Event {
        transfer = nil
        let checkpoint = current.checkpoint.flatMap { $0.height <= height ? $0 : nil }
        if let checkpoint { certify(checkpoint.certificate) }
        logger.info("state transfer done", metadata: ["height": "\(height)"])
        notify(.stateTransferDone(height: height))
        return .stateTransferred(tip: ledger.tip, checkpoint: checkpoint, executed: current.executed,
                                clients: ExecutedClients(ledger.state))
    }

    /// The end of the transfer, once consensus delivered the blocks up to its target itself.
    func transferOvertaken() -> Event? {
        guard let current = transfer, height >= current.target else { return nil }
        notify(.transferOvertaken(target: current.target))
        return transferDone(current)
    }

    /// A peer asks for blocks: only finding where they are happens on the loop; reading,
    /// encoding and sending them is work for `workers` (off the loop in production).
    func serveBlocks(from: Height, to: Height, to peer: ReplicaID) {
        guard transferRequests.allow(peer, nowMs: clock.nowMs) else { return notify(.dropped(.rateLimited)) }
        serve(.peer, from: from, to: to) { network, entries in
            network.send(PeerFrame.blocks(entries).encoded(), to: peer, afterMs: 0)
        }
    }

    /// A joining replica, connected as a client, asks for blocks: served like a peer's
    /// request, at a client's rate, but only to a key that may see every value (SPEC.md
    /// §19.4); any other is told `unknownClient` (request id 0: not a request).
    func serveBlocks(from: Height, to: Height, toClient client: PublicKey) {
        guard fetchRequests.allow(client, nowMs: clock.nowMs) else { return notify(.dropped(.rateLimited)) }
        guard ledger.state.mayReceive(.blocks, client: client) == nil else {
            notify(.dropped(.blocksRefused))
            return network.send(ClientFrame.refused(requestID: 0, .unknownClient).encoded(), toClient: client)
        }
        guard network.isReading(client: client) else { return notify(.dropped(.clientNotReading)) }
        // A joiner at this replica's end of the ledger is told so: an empty answer.
        if from >= 1, from <= to, from > ledger.blockLog.height {
            return network.send(ClientFrame.blocks([]).encoded(), toClient: client)
        }
        serve(.client, from: from, to: to) { network, entries in
            network.send(ClientFrame.blocks(entries).encoded(), toClient: client)
        }
    }

    /// Bytes of a `blocks` answer beyond its entries: the frame's tags and list length.
    static let blocksFrameOverheadBytes = 64

    /// Reads the blocks in `from...to` (capped at `PeerFrame.transferBlocksMax`, and by bytes
    /// at what fits one frame, at least one block: SPEC.md §15) off the loop and hands them to
    /// `send`.
    private func serve(_ kind: ServingClass, from: Height, to: Height,
                       send: @escaping @Sendable (any ShellNetwork, [LedgerEntry]) -> Void) {
        guard let range = PeerFrame.transferRange(from: from, to: to, ledgerHeight: ledger.blockLog.height) else {
            return notify(.dropped(.badTransferRequest))
        }
        let locations = range.map { ledger.blockLog.location(of: $0) }
        let network = Unchecked(network), fileSystem = Unchecked(fileSystem), serve = interceptor?.serve
        let budget = config.parameters.frameBytesMax - Self.blocksFrameOverheadBytes
        let admitted = workers.serve(kind) {
            // A block that fails its checks (damage being repaired) ends the answer there.
            var entries: [LedgerEntry] = []
            var bytes = 0
            for location in locations {
                guard let entry = try? BlockLogReader.read(location, fileSystem: fileSystem.value) else { break }
                // One block always fits (the configuration check keeps batchBytesMax at most
                // half of frameBytesMax); more only while the frame stays within the limit.
                bytes += entry.encoded().count
                if !entries.isEmpty, bytes > budget { break }
                entries.append(entry)
            }
            send(network.value, serve?(entries) ?? entries)
        }
        if !admitted { notify(.dropped(.rateLimited)) }
    }
}
