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
    /// What reaches the join loop: a peer's answer, or the end of a timer.
    enum Input: Sendable {
        case blocks([LedgerEntry], from: ReplicaID)
        case refused(by: ReplicaID)
        case timedOut(question: Int)
        case waited
    }

    /// Runs the join (`JoinProgress`) over a client connection to the cluster, event by event:
    /// answers and timers arrive on one bounded stream, nothing polls.
    public static func run(genesis: ClusterConfig, key: PrivateKey, dataDirectory: String, logger: Logger) async throws {
        let ledger = try JoiningLedger(genesis: genesis, key: key.publicKey, dataDirectory: dataDirectory, logger: logger)
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        // Peers' answers wait within a bound (a flood is dropped, and what was dropped is asked
        // again); the loop's own timer always gets through, and there is one at a time.
        let (inputs, feed) = AsyncStream.makeStream(of: Input.self)
        let answersWaiting = NIOLockedValueBox(0)
        var config = ledger.governance.config
        let transport = connect(group: group, config: config, key: key, logger: logger) { answer in
            let admitted = answersWaiting.withLockedValue { waiting -> Bool in
                guard waiting < Self.answersWaitingMax else { return false }
                waiting += 1
                return true
            }
            if admitted { feed.yield(answer) }
        }
        defer {
            feed.finish()
            Task { await transport.shutdown(); try? await group.shutdownGracefully() }
        }
        var progress = JoinProgress(key: key.publicKey)
        // One timer at a time: a new question or wait replaces the one pending.
        var timer: Task<Void, Never>?
        defer { timer?.cancel() }
        func after(_ ms: UInt64, _ input: Input) {
            timer?.cancel()
            timer = Task {
                guard (try? await Task.sleep(for: .milliseconds(Int64(ms)))) != nil else { return }
                feed.yield(input)
            }
        }
        func ask() {
            if ledger.governance.config != config {
                config = ledger.governance.config
                transport.update(config: config)
            }
            let question = progress.ask(ledger)
            transport.send(question.frame, to: question.peer)
            after(JoinProgress.answerTimeoutMs, .timedOut(question: question.number))
        }
        logger.info("joining: fetching the ledger from the cluster", metadata: ["height": "\(ledger.height)"])
        var lastReport = ledger.height
        ask()
        for await input in inputs {
            if case .blocks = input { answersWaiting.withLockedValue { $0 -= 1 } }
            if case .refused = input { answersWaiting.withLockedValue { $0 -= 1 } }
            let step = try take(input, progress: &progress, ledger: ledger, logger: logger)
            switch step {
            case nil: continue
            case .ask?: ask()
            case .wait?:
                if progress.attempt % max(1, config.n - 1) == 0 {
                    logger.info("waiting for an epoch that lists this key", metadata: [
                        "height": "\(ledger.height)", "epoch": "\(ledger.governance.epoch)"])
                }
                after(JoinProgress.waitMs, .waited)
            case let .done(id)?:
                logger.info("joined: the ledger lists this key; starting", metadata: [
                    "height": "\(ledger.height)", "epoch": "\(ledger.governance.epoch)", "replica": "\(id)"])
                return
            case .removed?:
                throw NodeStartupError("an epoch listed this key and a later one removed it (epoch \(ledger.governance.epoch), height \(ledger.height)); it must not start as a replica")
            }
            if ledger.height >= lastReport + 1000 {
                lastReport = ledger.height
                logger.info("joining", metadata: ["height": "\(ledger.height)", "epoch": "\(ledger.governance.epoch)"])
            }
        }
    }

    static let answersWaitingMax = 64

    /// A client connection to the configuration's validators whose answers go to `answered`.
    static func connect(group: MultiThreadedEventLoopGroup, config: ClusterConfig, key: PrivateKey, logger: Logger,
                        answered: @escaping @Sendable (Input) -> Void) -> Transport {
        Transport(group: group, config: config, role: .client(key.publicKey), key: key,
                  settings: .init(frameBytesMax: CodecLimits.bytesMax * 2), logger: logger,
                  onFrame: { role, bytes in
                      guard case let .replica(replica) = role else { return }
                      switch try? ClientFrame(decoding: bytes) {
                      case let .blocks(entries)?: answered(.blocks(entries, from: replica))
                      case .refused(_, .unknownClient)?: answered(.refused(by: replica))
                      default: return
                      }
                  })
    }

    /// Hands `input` to the join's state machine, saying in the log what went wrong.
    static func take(_ input: Input, progress: inout JoinProgress, ledger: JoiningLedger, logger: Logger) throws -> JoinProgress.Step? {
        switch input {
        case let .blocks(entries, peer):
            let step = try progress.received(entries, from: peer, ledger: ledger)
            if step != nil, let error = progress.rejection {
                logger.warning("a replica sent a block that fails its checks; asking another", metadata: [
                    "replica": "\(peer)", "error": "\(error)"])
            }
            return step
        case let .refused(peer):
            let step = progress.refused(by: peer, ledger: ledger)
            if step != nil {
                logger.warning("replica \(peer) serves blocks only to validators of the current or a scheduled configuration (or to a key with read on every key); has the change that adds this key been approved?")
            }
            return step
        case let .timedOut(question): return progress.timedOut(question: question, ledger: ledger)
        case .waited: return .ask
        }
    }
}
