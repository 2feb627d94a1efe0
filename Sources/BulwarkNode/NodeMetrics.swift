import BulwarkConsensus
import BulwarkTransport
import BulwarkCore
import BulwarkShell
import CoreMetrics
import NIOConcurrencyHelpers
import Prometheus

// Prometheus has its own Counter and Gauge: the types here are swift-metrics' (CoreMetrics).

/// The replica's metrics, recorded through swift-metrics into this node's own Prometheus
/// registry (one per node, so several nodes in one process never share a series) and served
/// as Prometheus text on `GET /metrics`.
final class NodeMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()

    let committedHeight: CoreMetrics.Gauge
    let view: CoreMetrics.Gauge
    /// The configuration epoch (SPEC.md §18).
    let epoch: CoreMetrics.Gauge
    let stableCheckpoint: CoreMetrics.Gauge
    let changingView: CoreMetrics.Gauge
    /// 1 while the replica rejoins after a lost disk (or asks the peers before its first
    /// start), with the floor it signs nothing at or below (SPEC.md §14.4).
    let rejoining: CoreMetrics.Gauge
    let rejoinFloorHeight: CoreMetrics.Gauge
    let rejoinFloorView: CoreMetrics.Gauge
    let viewChanges: CoreMetrics.Counter
    /// View changes this replica asked for because the primary's turnaround was too long.
    let slowPrimarySuspicions: CoreMetrics.Counter
    let blocksExecuted: CoreMetrics.Counter
    let requestsExecuted: CoreMetrics.Counter
    /// Requests the client policy denied at execution.
    let requestsDenied: CoreMetrics.Counter
    let clientRequests: CoreMetrics.Counter
    let repliesSent: CoreMetrics.Counter
    let inboxDepth: CoreMetrics.Recorder
    let walFsyncs: CoreMetrics.Counter
    let walFsyncTime: CoreMetrics.Timer
    let blockFsyncTime: CoreMetrics.Timer
    /// From a request's first arrival at this replica to its reply leaving (block durable).
    let requestLatency: CoreMetrics.Timer
    let stateTransfers: CoreMetrics.Counter
    let transferredBlocks: CoreMetrics.Counter
    let snapshotsWritten: CoreMetrics.Counter
    let peerQueueDrops: CoreMetrics.Gauge
    let refusedConnections: CoreMetrics.Gauge
    /// Ed25519 signatures this process verified, and checks answered from its cache of
    /// signatures already found valid (the dominant CPU cost; see the README's figures).
    let signaturesVerified: CoreMetrics.Gauge
    let signatureCacheHits: CoreMetrics.Gauge
    /// Inbound connections open, and those still in their handshake.
    let inboundConnections: CoreMetrics.Gauge
    let inboundHandshaking: CoreMetrics.Gauge
    /// Connections and frames the transport refused, by reason (`Transport.Refusal`).
    let refusals: [Transport.Refusal: CoreMetrics.Gauge]
    /// Per peer: the highest height it signed a vote for, how far that is behind this
    /// replica's committed height, whether the connection to it is up, and the frames queued
    /// for it while it is not.
    let peerHeight: [ReplicaID: CoreMetrics.Gauge]
    let peerLag: [ReplicaID: CoreMetrics.Gauge]
    let peerConnected: [ReplicaID: CoreMetrics.Gauge]
    let peerQueuedFrames: [ReplicaID: CoreMetrics.Gauge]
    private let factory: PrometheusMetricsFactory
    private let dropped: [DropReason: CoreMetrics.Counter]
    /// The core counts rejected messages by reason; these mirror its counts at each scrape.
    private let exportedRejections = NIOLockedValueBox<[RejectReason: UInt64]>([:])

    init(replica: ReplicaID, peers: [ReplicaID]) {
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.durationHistogramBuckets["bulwark_request_latency_seconds"] = [
            .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(20),
            .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1),
            .seconds(2), .seconds(5),
        ]
        for name in ["bulwark_wal_fsync_seconds", "bulwark_block_fsync_seconds"] {
            factory.durationHistogramBuckets[name] = [
                .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2),
                .milliseconds(5), .milliseconds(10), .milliseconds(50), .milliseconds(250),
            ]
        }
        factory.valueHistogramBuckets["bulwark_inbox_depth"] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]
        self.factory = factory
        let labels = [("replica", "\(replica)")]
        committedHeight = CoreMetrics.Gauge(label: "bulwark_committed_height", dimensions: labels, factory: factory)
        view = CoreMetrics.Gauge(label: "bulwark_view", dimensions: labels, factory: factory)
        epoch = CoreMetrics.Gauge(label: "bulwark_epoch", dimensions: labels, factory: factory)
        stableCheckpoint = CoreMetrics.Gauge(label: "bulwark_stable_checkpoint", dimensions: labels, factory: factory)
        changingView = CoreMetrics.Gauge(label: "bulwark_changing_view", dimensions: labels, factory: factory)
        viewChanges = CoreMetrics.Counter(label: "bulwark_view_changes_total", dimensions: labels, factory: factory)
        slowPrimarySuspicions = CoreMetrics.Counter(label: "bulwark_slow_primary_suspicions_total", dimensions: labels,
                                                    factory: factory)
        blocksExecuted = CoreMetrics.Counter(label: "bulwark_blocks_executed_total", dimensions: labels, factory: factory)
        requestsExecuted = CoreMetrics.Counter(label: "bulwark_requests_executed_total", dimensions: labels, factory: factory)
        requestsDenied = CoreMetrics.Counter(label: "bulwark_requests_denied_total", dimensions: labels, factory: factory)
        clientRequests = CoreMetrics.Counter(label: "bulwark_client_requests_total", dimensions: labels, factory: factory)
        repliesSent = CoreMetrics.Counter(label: "bulwark_replies_sent_total", dimensions: labels, factory: factory)
        inboxDepth = CoreMetrics.Recorder(label: "bulwark_inbox_depth", dimensions: labels, factory: factory)
        walFsyncs = CoreMetrics.Counter(label: "bulwark_wal_fsyncs_total", dimensions: labels, factory: factory)
        walFsyncTime = CoreMetrics.Timer(label: "bulwark_wal_fsync_seconds", dimensions: labels, factory: factory)
        blockFsyncTime = CoreMetrics.Timer(label: "bulwark_block_fsync_seconds", dimensions: labels, factory: factory)
        requestLatency = CoreMetrics.Timer(label: "bulwark_request_latency_seconds", dimensions: labels, factory: factory)
        stateTransfers = CoreMetrics.Counter(label: "bulwark_state_transfers_total", dimensions: labels, factory: factory)
        transferredBlocks = CoreMetrics.Counter(label: "bulwark_transferred_blocks_total", dimensions: labels, factory: factory)
        rejoining = CoreMetrics.Gauge(label: "bulwark_rejoining", dimensions: labels, factory: factory)
        rejoinFloorHeight = CoreMetrics.Gauge(label: "bulwark_rejoin_floor_height", dimensions: labels, factory: factory)
        rejoinFloorView = CoreMetrics.Gauge(label: "bulwark_rejoin_floor_view", dimensions: labels, factory: factory)
        snapshotsWritten = CoreMetrics.Counter(label: "bulwark_snapshots_written_total", dimensions: labels, factory: factory)
        peerQueueDrops = CoreMetrics.Gauge(label: "bulwark_peer_queue_dropped_frames", dimensions: labels, factory: factory)
        refusedConnections = CoreMetrics.Gauge(label: "bulwark_refused_connections", dimensions: labels, factory: factory)
        signaturesVerified = CoreMetrics.Gauge(label: "bulwark_signatures_verified", dimensions: labels, factory: factory)
        signatureCacheHits = CoreMetrics.Gauge(label: "bulwark_signature_cache_hits", dimensions: labels, factory: factory)
        inboundConnections = CoreMetrics.Gauge(label: "bulwark_inbound_connections", dimensions: labels, factory: factory)
        inboundHandshaking = CoreMetrics.Gauge(label: "bulwark_inbound_handshaking", dimensions: labels, factory: factory)
        refusals = Dictionary(uniqueKeysWithValues: Transport.Refusal.allCases.map { reason in
            (reason, CoreMetrics.Gauge(label: "bulwark_refused_total", dimensions: labels + [("reason", reason.rawValue)],
                                       factory: factory))
        })
        func perPeer(_ label: String) -> [ReplicaID: CoreMetrics.Gauge] {
            Dictionary(uniqueKeysWithValues: peers.map { peer in
                (peer, CoreMetrics.Gauge(label: label, dimensions: labels + [("peer", "\(peer)")], factory: factory))
            })
        }
        peerHeight = perPeer("bulwark_peer_height")
        peerLag = perPeer("bulwark_peer_lag_blocks")
        peerConnected = perPeer("bulwark_peer_connected")
        peerQueuedFrames = perPeer("bulwark_peer_queued_frames")
        dropped = Dictionary(uniqueKeysWithValues: DropReason.allCases.map { reason in
            (reason, Counter(label: "bulwark_dropped_input_total", dimensions: labels + [("reason", reason.rawValue)],
                             factory: factory))
        })
    }

    func drop(_ reason: DropReason) { dropped[reason]!.increment() }

    /// Records what the shell reported.
    func record(_ notice: ShellNotice) {
        switch notice {
        case let .dropped(reason): drop(reason)
        case let .enteredEpoch(epoch, _): self.epoch.record(epoch)
        case let .walSynced(nanoseconds):
            walFsyncs.increment()
            walFsyncTime.recordNanoseconds(Int64(clamping: nanoseconds))
        case let .blockLogSynced(nanoseconds): blockFsyncTime.recordNanoseconds(Int64(clamping: nanoseconds))
        case let .executed(_, requests, denied, _):
            blocksExecuted.increment()
            requestsExecuted.increment(by: requests)
            if denied > 0 { requestsDenied.increment(by: denied) }
        case let .replied(latency):
            repliesSent.increment()
            if let latency { requestLatency.recordNanoseconds(Int64(clamping: latency)) }
        case let .enteredView(view, _): if view > 0 { viewChanges.increment() }
        case .suspectedPrimary: slowPrimarySuspicions.increment()
        case .stateTransferStarted: stateTransfers.increment()
        case .transferredBlock: transferredBlocks.increment()
        case .snapshotWritten: snapshotsWritten.increment()
        case .rejoining, .rejoined:
            break  // gauges, from the core's floor (`ReplicaNode.updateGauges`)
        case .refused, .sentViewChange, .sent, .stateTransferDone, .transferRejected, .damageFound, .deliveredAfterTransfer, .transferOvertaken:
            break
        }
    }

    /// Brings the rejected-message counters up to the core's counts.
    func recordRejections(_ counts: [RejectReason: UInt64], replica: ReplicaID) {
        let deltas = exportedRejections.withLockedValue { exported in
            counts.map { reason, count in
                defer { exported[reason] = count }
                return (reason, Int(count - (exported[reason] ?? 0)))
            }
        }
        for (reason, delta) in deltas where delta > 0 {
            Counter(label: "bulwark_rejected_messages_total",
                    dimensions: [("replica", "\(replica)"), ("reason", reason.rawValue)], factory: factory)
                .increment(by: delta)
        }
    }

    /// The Prometheus text exposition of every series.
    func exposition() -> [UInt8] {
        var buffer: [UInt8] = []
        registry.emit(into: &buffer)
        return buffer
    }
}

