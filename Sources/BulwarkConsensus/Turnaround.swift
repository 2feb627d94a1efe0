import BulwarkCore

/// Watching the primary's turnaround: how long requests a backup already holds wait before
/// the primary proposes them.
///
/// PBFT's request timer only replaces a primary slower than the view-change timeout, so a
/// primary that holds every proposal back to just under it keeps its view and starves a
/// closed-loop workload. Following Prime's bounded-delay idea (Amir et al., DSN 2008), a backup
/// measures the turnaround of the requests it holds (arrival to the pre-prepare carrying them)
/// and compares its mean over a window of requests with what the network allows: the batch
/// delay, a slack for a loaded machine, and a multiple of the time the backups need to exchange
/// prepares, which the primary does not control. A backup that sees the primary exceed it in
/// two windows running asks for a view change; the
/// tolerance doubles with each such suspicion (so a cluster whose primaries all look slow does
/// not change views forever) and halves again after a run of good windows.
///
/// All times come from the shell's `nowMs`, so the core stays deterministic.
struct TurnaroundMonitor: Sendable {
    /// Requests per judgement: the mean over a window, so one late request is not a verdict.
    static let windowRequests = 16
    /// The allowed turnaround is this many prepare exchanges on top of the batch delay.
    static let hopsAllowed: UInt64 = 4
    /// Bad windows in a row that make a verdict: one window of unlucky scheduling on a loaded
    /// machine is not enough to replace a primary.
    static let badWindowsToSuspect = 2
    /// Good windows in a row that halve the tolerance again.
    static let goodWindowsToRelax = 16
    static let toleranceMax = 64

    /// Mean time from accepting a pre-prepare to holding its prepared certificate, in 1/16 ms
    /// (an exponentially weighted average over all views); nil before the first sample.
    private(set) var hopEstimate16: UInt64?
    private var windowSumMs: UInt64 = 0
    private var windowCount = 0
    /// Multiplies the allowed turnaround; 1, 2, 4, ... up to `toleranceMax`.
    private(set) var tolerance: UInt64 = 1
    private var goodWindows = 0
    private var badWindows = 0

    /// A primary-independent latency sample: a pre-prepare accepted `ms` ago is prepared now.
    mutating func recordPrepareExchange(_ ms: UInt64) {
        let sample = ms * 16
        if let estimate = hopEstimate16 {
            hopEstimate16 = (estimate * 7 + sample) / 8
        } else {
            hopEstimate16 = sample
        }
    }

    /// The turnaround a window's mean may reach, in ms; nil until the hop estimate exists.
    func allowedMs(batchDelayMs: UInt64, slackMs: UInt64) -> UInt64? {
        guard let hop16 = hopEstimate16 else { return nil }
        return (batchDelayMs + slackMs + (Self.hopsAllowed * hop16 + 15) / 16) * tolerance
    }

    enum Verdict: Equatable {
        case tooSlow(meanMs: UInt64, allowedMs: UInt64)
    }

    /// Records one request's turnaround; at the end of a window, judges the primary.
    mutating func recordTurnaround(_ ms: UInt64, batchDelayMs: UInt64, slackMs: UInt64) -> Verdict? {
        windowSumMs += ms
        windowCount += 1
        guard windowCount >= Self.windowRequests else { return nil }
        let mean = windowSumMs / UInt64(windowCount)
        windowSumMs = 0
        windowCount = 0
        guard let allowed = allowedMs(batchDelayMs: batchDelayMs, slackMs: slackMs) else { return nil }
        if mean > allowed {
            goodWindows = 0
            badWindows += 1
            guard badWindows >= Self.badWindowsToSuspect else { return nil }
            badWindows = 0
            tolerance = min(tolerance * 2, UInt64(Self.toleranceMax))
            return .tooSlow(meanMs: mean, allowedMs: allowed)
        }
        badWindows = 0
        goodWindows += 1
        if goodWindows >= Self.goodWindowsToRelax {
            goodWindows = 0
            tolerance = max(1, tolerance / 2)
        }
        return nil
    }

    /// A new view starts a new window: the old primary's samples say nothing about the new one.
    mutating func startView() {
        windowSumMs = 0
        windowCount = 0
        badWindows = 0
    }
}
