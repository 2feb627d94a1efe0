import BulwarkCore
import BulwarkStorage

/// Scrubbing: sealed block-log segments are taken from their indexes at start-up, unread, so
/// a sector that rots in one would go unnoticed until a peer asks for its blocks. One sealed
/// segment at a time is read in full and checked, off the loop. Damage found is handled the
/// way damage found at start-up is: the log is cut at the damaged record, and the replica
/// stops, to restart on the shortened ledger and fetch the rest from peers (it never answers
/// from, or votes on, damaged data).
extension ReplicaShell {
    func scrubNextSegment() {
        guard !stopped, faulted == nil else { return }
        let sealed = ledger.blockLog.sealedSegments
        guard !sealed.isEmpty else { return clock.schedule(.scrub, afterMs: scrubIntervalMs) }
        let segment = sealed[scrubCursor % sealed.count]
        scrubCursor = (scrubCursor + 1) % sealed.count
        let plan = ledger.blockLog.scrubPlan(segment: segment), fileSystem = Unchecked(fileSystem)
        let found = Box<LogDamage?>(nil)
        workers.background({ found.value = BlockLog.scrub(plan, fileSystem: fileSystem.value) }, then: { [self] in
            guard !stopped, faulted == nil else { return }
            if let damage = found.value { return damageFound(damage) }
            clock.schedule(.scrub, afterMs: scrubIntervalMs)
        })
    }

    func damageFound(_ damage: LogDamage) {
        logger.error("block log damaged; cutting it there and restarting to repair from peers",
                     metadata: ["height": "\(damage.height)", "segment": "\(damage.segment)", "reason": "\(damage.reason)"])
        notify(.damageFound(damage))
        do { try ledger.blockLog.cut(at: damage) } catch {
            return fault("\(damage) and the log could not be cut there: \(error)")
        }
        fault("\(damage); the log was cut there, and a restart repairs the rest from peers")
    }
}
