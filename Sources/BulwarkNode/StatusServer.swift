import BulwarkCore
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// Serves `GET /status` (JSON) and `GET /metrics` (Prometheus text) on the replica's HTTP address.
/// One request per connection; a malformed request, or none within `idleTimeout`, closes it.
final class StatusHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let node: ReplicaNode
    private var path: String?

    init(node: ReplicaNode) { self.node = node }

    static let idleTimeout = TimeAmount.seconds(5)
    /// HTTP connections at once; more are closed at once.
    static let connectionsMax = 64

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // NIO's HTTP error handler has answered 400 with `Connection: close`; close it too.
        context.close(promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent { context.close(promise: nil) }
        context.fireUserInboundEventTriggered(event)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case let .head(head): path = head.method == .GET ? head.uri : nil
        case .body: break
        case .end:
            let requested = path
            let channel = context.channel
            if requested == "/status" {
                node.statusJSON().whenComplete { result in
                    let body = (try? result.get()) ?? Data("{}".utf8)
                    Self.respond(channel: channel, status: .ok, type: "application/json", body: body)
                }
            } else if requested == "/metrics" {
                node.metricsText().whenComplete { result in
                    let body = (try? result.get()) ?? Data()
                    Self.respond(channel: channel, status: .ok, type: "text/plain; version=0.0.4", body: body)
                }
            } else {
                Self.respond(channel: channel, status: .notFound, type: "text/plain",
                             body: Data("not found: try /status or /metrics\n".utf8))
            }
        }
    }

    static func respond(channel: any Channel, status: HTTPResponseStatus, type: String, body: Data) {
        channel.eventLoop.execute {
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: type)
            headers.add(name: "Content-Length", value: "\(body.count)")
            headers.add(name: "Connection", value: "close")
            channel.write(HTTPServerResponsePart.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers)),
                          promise: nil)
            channel.write(HTTPServerResponsePart.body(.byteBuffer(ByteBuffer(bytes: body))), promise: nil)
            channel.writeAndFlush(HTTPServerResponsePart.end(nil)).whenComplete { _ in channel.close(promise: nil) }
        }
    }
}

extension ReplicaNode {
    /// The replica's state as `/status` reports it.
    func statusJSON() -> EventLoopFuture<Data> {
        loop.submit { [self] in
            let object: [String: Any] = [
                "replica": Int(id), "view": shell.core.view, "changingView": shell.core.isChangingView,
                "primary": Int(shell.core.primary), "height": shell.height, "epoch": shell.epoch,
                "retired": shell.retired ?? NSNull(),
                "stableCheckpoint": shell.core.lowWatermark, "faulted": faulted ?? NSNull(),
                // While rejoining: the floor it signs nothing at or below, and what it waits for.
                "starting": shell.isProbing,
                "rejoining": shell.core.rejoining.map { floor -> [String: Any] in
                    floor.isUnknown ? ["floorKnown": false]
                        : ["floorKnown": true, "untilHeight": floor.height, "untilView": floor.view, "epoch": floor.epoch,
                           "waitsForViewChange": shell.core.epoch == floor.epoch && shell.core.view <= floor.view]
                } ?? NSNull(),
                "rejected": Dictionary(uniqueKeysWithValues: shell.core.rejections.map { ($0.key.rawValue, $0.value) }),
                "peerHeights": Dictionary(uniqueKeysWithValues: shell.core.peerHeights.map { ("\($0.key)", $0.value) }),
            ]
            return (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        }
    }

    /// Every metric in Prometheus text; the counters that mirror the core's and the
    /// transport's own counts are brought up to date first.
    func metricsText() -> EventLoopFuture<Data> {
        loop.submit { [self] in
            metrics.recordRejections(shell.core.rejections, replica: id)
            let counters = transport.counters
            metrics.peerQueueDrops.record(counters.dropped)
            metrics.refusedConnections.record(counters.refused)
            for (reason, count) in transport.refusals { metrics.refusals[reason]?.record(count) }
            let inbound = transport.inboundConnections
            metrics.inboundConnections.record(inbound.open)
            metrics.inboundHandshaking.record(inbound.handshaking)
            let signatures = verifier.counts
            metrics.signaturesVerified.record(signatures.verifications)
            metrics.signatureCacheHits.record(signatures.hits)
            updateGauges()
            return Data(metrics.exposition())
        }
    }

    func startStatusServer(at address: BulwarkCore.Address) async throws {
        let open = NIOLockedValueBox(0)
        let channel = try await ServerBootstrap(group: ioGroup)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { [self] channel in
                let admitted = open.withLockedValue { count -> Bool in
                    guard count < StatusHandler.connectionsMax else { return false }
                    count += 1
                    return true
                }
                guard admitted else { return channel.close() }
                channel.closeFuture.whenComplete { _ in open.withLockedValue { $0 -= 1 } }
                return channel.pipeline.configureHTTPServerPipeline().flatMapThrowing {
                    try channel.pipeline.syncOperations.addHandlers([IdleStateHandler(allTimeout: StatusHandler.idleTimeout),
                                                                     StatusHandler(node: self)])
                }
            }
            .bind(host: address.host, port: Int(address.port)).get()
        statusChannel = channel
    }
}
