import BulwarkConsensus
import BulwarkCore
import BulwarkShell

/// A replica that loses its disk in the middle of the load and rejoins (SPEC.md §14.4).
extension Simulation {
    /// What an operator does about a replica that refuses to start on a damaged write-ahead
    /// log, as the refusal says: moves the log aside and starts the replica with --rejoin. A
    /// disk that fails meanwhile (full, or out of descriptors) leaves it for the next refusal.
    func moveDamagedLogAside(_ node: SimNode) {
        let path = SimNode.dataDirectory + "/consensus.wal"
        do {
            try node.fileSystem.rename(path, to: path + ".damaged")
            try node.fileSystem.syncDirectory(SimNode.dataDirectory)
        } catch {
            return
        }
        trace?("\(now)ms r\(node.id) damaged write-ahead log moved aside; starting with --rejoin")
        node.walDamaged = false
        node.startup = .rejoin
        report.rejoinsAfterDamagedLog += 1
    }

    /// Schedules the wipe of one honest replica (not a twin's) in the middle of the load.
    func scheduleWipe() {
        let candidates = honestNodes.filter { $0.id < options.replicas }
        guard options.wipe, !candidates.isEmpty else { return }
        let node = candidates[Int(rng.between(0, UInt64(candidates.count - 1)))]
        let window = options.faultWindowMs
        schedule(at: rng.between(window / 5, window / 2), .wipe(node.id, downMs: rng.between(100, 1500)))
    }

    /// Takes the node down, wipes its disk, and restarts it `downMs` later: with `--rejoin`,
    /// or in the negative control as a new cluster's replica. Waits for a moment when requests
    /// are in flight, within the fault window.
    func wipe(_ node: SimNode, downMs: UInt64) {
        if !clients.contains(where: { $0.current != nil }), now + 20 < options.faultWindowMs {
            return schedule(at: now + 20, .wipe(node.id, downMs: downMs))
        }
        report.wipedAtHeight = nodes.compactMap { $0.shell?.height }.max() ?? 0
        trace?("\(now)ms r\(node.id) disk wiped at height \(node.shell?.height ?? 0); restarting in \(downMs)ms")
        node.endIncarnation()
        node.fileSystem.wipe()
        node.diskCorrupted = false
        node.startup = options.unguardedRejoin ? .genesis : .rejoin
        wipedNode = node.id
        schedule(at: now + downMs, .restart(node.id))
    }
}
