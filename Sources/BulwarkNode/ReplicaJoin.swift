import BulwarkCore
import BulwarkShell
import BulwarkTransport
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOPosix

/// Joining a running cluster (`bulwark node --join`): a replica with only cluster.json, its
/// key and an empty (or stale) data directory fetches the committed ledger from the cluster's
/// replicas, connected to them as a client, and checks every block from genesis
/// (`JoiningLedger`), following each epoch's configuration to the replicas it names. It stops
/// once the epoch in force lists its key and the replica it asked has nothing newer; the
/// replica then starts as usual and catches up the rest by state transfer.
public enum ReplicaJoin {
    public static func run(genesis: ClusterConfig, key: PrivateKey, dataDirectory: String, logger: Logger) async throws {
        let ledger = try JoiningLedger(genesis: genesis, dataDirectory: dataDirectory, logger: logger)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let answers = NIOLockedValueBox<[(replica: ReplicaID, entries: [LedgerEntry])]>([])
        let refusals = NIOLockedValueBox<Set<ReplicaID>>([])
        var config = ledger.governance.config
        let transport = Transport(group: group, config: config, role: .client(key.publicKey), key: key,
                                  settings: .init(frameBytesMax: CodecLimits.bytesMax * 2), logger: logger,
                                  onFrame: { role, bytes in
                                      guard case let .replica(replica) = role else { return }
                                      switch try? ClientFrame(decoding: bytes) {
                                      case let .blocks(entries)?:
                                          answers.withLockedValue { if $0.count < 64 { $0.append((replica, entries)) } }
                                      case .refused(_, .unknownClient)?:
                                          refusals.withLockedValue { _ = $0.insert(replica) }
                                      default: return
                                      }
                                  })
        defer {
            Task { await transport.shutdown(); try? await group.shutdownGracefully() }
        }
        logger.info("joining: fetching the ledger from the cluster", metadata: ["height": "\(ledger.height)"])
        var progress = JoinProgress(key: key.publicKey)
        var lastReport = ledger.height
        while true {
            let governance = ledger.governance
            if governance.config != config {
                config = governance.config
                transport.update(config: config)
            }
            let (peer, from, to) = progress.request(ledger)
            answers.withLockedValue { $0.removeAll() }
            transport.send(ClientFrame.fetchBlocks(from: from, to: to).encoded(), to: peer)
            var answer: [LedgerEntry]?
            for _ in 0..<200 where answer == nil && !refusals.withLockedValue({ $0.contains(peer) }) {
                answer = answers.withLockedValue { answers in answers.first { $0.replica == peer }?.entries }
                if answer == nil { try await Task.sleep(for: .milliseconds(10)) }
            }
            if answer == nil, refusals.withLockedValue({ $0.remove(peer) }) != nil {
                logger.warning("replica \(peer) serves blocks only to validators of the current or a scheduled configuration (or to a key with read on every key); has the change that adds this key been approved?")
            }
            var added: Int?
            if let entries = answer {
                do { added = try ledger.append(entries) } catch let error as LedgerError {
                    logger.warning("a replica sent a block that fails its checks; asking another", metadata: [
                        "replica": "\(peer)", "error": "\(error)"])
                }
            }
            switch progress.answered(added: added, ledger: ledger) {
            case .ask: break
            case .wait:
                if progress.attempt % max(1, config.n - 1) == 0 {
                    logger.info("waiting for an epoch that lists this key", metadata: [
                        "height": "\(ledger.height)", "epoch": "\(governance.epoch)"])
                }
                try await Task.sleep(for: .milliseconds(200))
            case let .done(id):
                logger.info("joined: the ledger lists this key; starting", metadata: [
                    "height": "\(ledger.height)", "epoch": "\(ledger.governance.epoch)", "replica": "\(id)"])
                return
            }
            if ledger.height >= lastReport + 1000 {
                lastReport = ledger.height
                logger.info("joining", metadata: ["height": "\(ledger.height)", "epoch": "\(ledger.governance.epoch)"])
            }
        }
    }
}
