import BulwarkStorage

/// The disk faults the design promises (ARCHITECTURE.md §7), injected per seed with `--disk-faults`.
/// Torn tails come with every crash (`Simulation.tornBytes`); these are the others.
enum DiskFault {
    /// A flipped bit in a block-log segment (a sealed one where there is one), found at the
    /// restart that follows: the replica serves up to the block before it and repairs the
    /// rest from peers.
    case corruptSegment
    /// A flipped bit in the newest state snapshot: it is passed over at the restart.
    case corruptSnapshot
    /// A flipped bit in the first half of the write-ahead log (its last record where that is
    /// large): the replica must refuse to start (it can no longer tell what it signed), until
    /// the operator moves the log aside and starts it with --rejoin. Injected only where the
    /// run can lose that replica meanwhile.
    case corruptWAL
    /// The disk is full for this long: writes fail, the replica stops, and its supervisor
    /// restarts it until there is space again.
    case full(ms: UInt64)
    /// Opens fail this many times (descriptors run out), at the restart that follows.
    case failingOpens(Int)
}

extension Simulation {
    func scheduleDiskFaults() {
        let window = options.faultWindowMs
        // A corrupted write-ahead log takes its replica out for good: only where no other
        // replica is faulty by design (a wiped replica is, until it rejoins), so that the run
        // stays within f.
        var walCorruptible = options.byzantine.isEmpty && options.twins == nil && !options.wipe
        for _ in 0..<rng.between(1, 3) {
            let node = Int(rng.between(0, UInt64(options.replicas - 1)))
            let at = rng.between(1000, window - 3000)
            let fault: DiskFault
            switch rng.between(0, 4) {
            case 0: fault = .corruptSegment
            case 1: fault = .corruptSnapshot
            case 2 where walCorruptible:
                walCorruptible = false
                fault = .corruptWAL
            case 3: fault = .full(ms: rng.between(200, 1500))
            default: fault = .failingOpens(Int(rng.between(1, 4)))
            }
            schedule(at: at, .diskFault(node, fault))
        }
    }

    func inject(_ fault: DiskFault, at node: SimNode) {
        report.diskFaultsInjected += 1
        let fs = node.fileSystem
        switch fault {
        case .corruptSegment:
            report.corruptedSegments += 1
            let segments = fs.paths.filter { $0.hasPrefix(SimNode.dataDirectory + "/blocks/") && $0.hasSuffix(".log") }
            corrupt(segments.count > 1 ? segments.dropLast().last : segments.last, at: node, restart: true)
        case .corruptSnapshot:
            report.corruptedSnapshots += 1
            corrupt(fs.paths.last { $0.hasSuffix(".snap") }, at: node, restart: true)
        case .corruptWAL:
            report.corruptedWALs += 1
            node.walDamaged = true
            corrupt(SimNode.dataDirectory + "/consensus.wal", at: node, restart: true, firstHalf: true)
        case let .full(ms):
            report.fullDisks += 1
            trace?("\(now)ms r\(node.id) disk full for \(ms)ms")
            fs.diskFull = true
            schedule(at: now + ms, .diskFreed(node.id))
        case let .failingOpens(count):
            report.failingOpens += 1
            trace?("\(now)ms r\(node.id) next \(count) opens fail")
            fs.failingOpens = count
            restartNow(node)
        }
    }

    /// Flips a bit of `path` (when it exists and holds bytes) and restarts the node so that
    /// start-up meets the damage.
    func corrupt(_ path: String?, at node: SimNode, restart: Bool, firstHalf: Bool = false) {
        guard let path, let size = node.fileSystem.bytes(path)?.count, size > 0 else { return }
        let offset = Int(rng.between(0, UInt64(firstHalf ? max(0, size / 2 - 1) : size - 1)))
        trace?("\(now)ms r\(node.id) bit flipped in \(path) at byte \(offset) of \(size)")
        node.fileSystem.corrupt(path, at: offset)
        node.diskCorrupted = true
        if restart { restartNow(node) }
    }

    /// The process exits and its supervisor starts it again at once.
    func restartNow(_ node: SimNode) {
        guard node.shell != nil else { return }
        node.endIncarnation()
        schedule(at: now + 50, .restart(node.id))
    }
}
