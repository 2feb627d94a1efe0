import BulwarkCore
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// Authenticated, framed TCP between replicas and from clients (DESIGN.md §5). A replica
/// listens for peers and clients; it keeps one outbound link to every other replica, which
/// reconnects with exponential backoff and, while down, queues at most `queueFramesMax` frames
/// and `queueBytesMax` bytes, dropping the oldest (counted). A connection whose other end does
/// not read holds at most `sendBufferBytesMax` unsent bytes; frames beyond that are dropped
/// (counted). So a slow, dead or hostile peer or client cannot grow memory or stall the others
/// (PITFALLS: buffers capped by count, not bytes); consensus retransmits what matters.
public final class Transport: Sendable {
    public struct Settings: Sendable {
        public var frameBytesMax: Int
        public var queueFramesMax = 4096
        public var queueBytesMax = 32 << 20
        public var sendBufferBytesMax = 16 << 20
        public var reconnectDelayMsMin: Int64 = 50
        public var reconnectDelayMsMax: Int64 = 2000

        public init(frameBytesMax: Int) { self.frameBytesMax = frameBytesMax }
    }

    let group: any EventLoopGroup
    let config: ClusterConfig
    /// Who this end is: a replica (listens, and links to its peers' replica addresses) or a
    /// client (links to the replicas' client addresses).
    let role: PeerRole
    let key: PrivateKey
    let settings: Settings
    let logger: Logger
    let onFrame: @Sendable (PeerRole, [UInt8]) -> Void
    let state = NIOLockedValueBox(State())

    struct State {
        var links: [ReplicaID: Link] = [:]
        /// Inbound authenticated connections from clients, by key, for replies.
        var clients: [PublicKey: any Channel] = [:]
        var listeners: [any Channel] = []
        var dropped: UInt64 = 0
        var refused: UInt64 = 0
        var stopped = false
    }

    /// The outbound side towards one replica.
    struct Link {
        var channel: (any Channel)?
        var queue = CircularBuffer<ByteBuffer>()
        var queuedBytes = 0
        var connecting = false
        var delayMs: Int64
    }

    public init(group: any EventLoopGroup, config: ClusterConfig, role: PeerRole, key: PrivateKey, settings: Settings,
                logger: Logger, onFrame: @escaping @Sendable (PeerRole, [UInt8]) -> Void) {
        self.group = group
        self.config = config
        self.role = role
        self.key = key
        self.settings = settings
        self.logger = logger
        self.onFrame = onFrame
    }

    /// Frames dropped because a peer's queue was full, and connections refused at handshake.
    public var counters: (dropped: UInt64, refused: UInt64) { state.withLockedValue { ($0.dropped, $0.refused) } }

    /// For each replica this transport sends to: whether its connection is up, and how many
    /// frames wait for one.
    public var links: [(replica: ReplicaID, connected: Bool, queuedFrames: Int)] {
        state.withLockedValue { state in
            state.links.keys.sorted().map { ($0, state.links[$0]!.channel != nil, state.links[$0]!.queue.count) }
        }
    }

    func pipeline(_ channel: any Channel, side: HandshakeHandler.Side) -> EventLoopFuture<Void> {
        let logger = self.logger
        let onFrame = self.onFrame
        let maximum = settings.frameBytesMax
        return channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandlers([
                // Frames carry an authentication tag beyond the payload limit.
                ByteToMessageHandler(FrameDecoder(maximum: maximum + FrameAuthenticator.tagBytes),
                                     maximumBufferSize: maximum + FrameAuthenticator.tagBytes + 8),
                MessageToByteHandler(FrameEncoder()),
                HandshakeHandler(side, onFailure: { [weak self] reason in
                    self?.state.withLockedValue { $0.refused += 1 }
                    logger.debug("peer refused", metadata: ["reason": "\(reason)"])
                }),
                FrameDelivery(
                    onAuthenticated: { [weak self] role, channel in
                        if case let .client(key) = role { self?.state.withLockedValue { $0.clients[key] = channel } }
                    },
                    onFrame: onFrame,
                    onClose: { [weak self] role in
                        if case let .client(key) = role { self?.state.withLockedValue { _ = $0.clients.removeValue(forKey: key) } }
                    }),
            ])
        }
    }

    var ownID: ReplicaID? {
        if case let .replica(id) = role { return id }
        return nil
    }

    /// Listens on `host:port` (port 0 picks a free port) for replicas and clients alike (the
    /// handshake says which); returns the bound port. Replicas only.
    public func listen(host: String, port: Int) async throws -> Int {
        guard let id = ownID else { preconditionFailure("only replicas listen") }
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.writeBufferWaterMark, value: writeBufferWaterMark)
            .childChannelInitializer { [self] channel in
                pipeline(channel, side: .acceptor(HandshakeAcceptor(config: config, id: id, key: key,
                                                                    nonce: Digest(SecureRandom.bytes(32))!,
                                                                    exchange: .random())))
            }
        let channel = try await bootstrap.bind(host: host, port: port).get()
        state.withLockedValue { $0.listeners.append(channel) }
        return channel.localAddress?.port ?? port
    }

    /// Sends a frame to replica `to`, connecting (and reconnecting) as needed.
    public func send(_ frame: [UInt8], to replica: ReplicaID) {
        guard replica != ownID, config.validator(replica) != nil else { return }
        let buffer = ByteBuffer(bytes: frame)
        let (channel, connect) = state.withLockedValue { state -> ((any Channel)?, Bool) in
            guard !state.stopped else { return (nil, false) }
            var link = state.links[replica] ?? Link(delayMs: settings.reconnectDelayMsMin)
            defer { state.links[replica] = link }
            if let channel = link.channel, channel.isActive {
                guard channel.isWritable else {
                    state.dropped += 1
                    return (nil, false)
                }
                return (channel, false)
            }
            link.queue.append(buffer)
            link.queuedBytes += buffer.readableBytes
            while link.queue.count > 1,
                  link.queue.count > settings.queueFramesMax || link.queuedBytes > settings.queueBytesMax {
                link.queuedBytes -= link.queue.removeFirst().readableBytes
                state.dropped += 1
            }
            if link.connecting { return (nil, false) }
            link.connecting = true
            return (nil, true)
        }
        if let channel { channel.writeAndFlush(buffer, promise: nil) }
        if connect { self.connect(to: replica) }
    }

    /// Sends a frame to an authenticated client, if it is connected here.
    public func send(_ frame: [UInt8], toClient client: PublicKey) {
        let channel = state.withLockedValue { state -> (any Channel)? in
            guard let channel = state.clients[client] else { return nil }
            guard channel.isWritable else {
                state.dropped += 1
                return nil
            }
            return channel
        }
        channel?.writeAndFlush(ByteBuffer(bytes: frame), promise: nil)
    }

    /// Past `sendBufferBytesMax` unsent bytes a channel stops being writable, and `send` drops.
    var writeBufferWaterMark: ChannelOptions.Types.WriteBufferWaterMark {
        .init(low: settings.sendBufferBytesMax / 2, high: settings.sendBufferBytesMax)
    }

    func connect(to replica: ReplicaID) {
        let validator = config.validator(replica)!
        let address = ownID == nil ? validator.clientAddress : validator.replicaAddress
        let connector = HandshakeConnector(config: config, role: role, key: key, nonce: Digest(SecureRandom.bytes(32))!,
                                           exchange: .random(), expected: replica)
        let future = ClientBootstrap(group: group)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelOption(.writeBufferWaterMark, value: writeBufferWaterMark)
            .connectTimeout(.seconds(2))
            .channelInitializer { [self] channel in
                pipeline(channel, side: .connector(connector)).flatMap {
                    channel.pipeline.addHandler(LinkActivation(transport: self, replica: replica))
                }
            }
            .connect(host: address.host, port: Int(address.port))
        future.whenFailure { [self] _ in retry(replica) }
        future.whenSuccess { [self] channel in
            channel.closeFuture.whenComplete { [self] _ in
                let reconnect = state.withLockedValue { state -> Bool in
                    guard !state.stopped, state.links[replica]?.channel === channel else { return false }
                    state.links[replica]?.channel = nil
                    return !(state.links[replica]?.queue.isEmpty ?? true)
                }
                if reconnect { retry(replica) }
            }
        }
    }

    /// Called on the link's event loop once the handshake authenticated the peer: flush the queue.
    func linkUp(_ replica: ReplicaID, channel: any Channel) {
        let queued = state.withLockedValue { state -> [ByteBuffer] in
            state.links[replica]?.channel = channel
            state.links[replica]?.connecting = false
            state.links[replica]?.delayMs = settings.reconnectDelayMsMin
            let queue = Array(state.links[replica]?.queue ?? [])
            state.links[replica]?.queue = []
            state.links[replica]?.queuedBytes = 0
            return queue
        }
        for frame in queued { channel.write(frame, promise: nil) }
        channel.flush()
    }

    func retry(_ replica: ReplicaID) {
        let delay = state.withLockedValue { state -> Int64? in
            guard !state.stopped, var link = state.links[replica] else { return nil }
            let delay = link.delayMs
            link.delayMs = min(settings.reconnectDelayMsMax, link.delayMs * 2)
            link.connecting = true
            state.links[replica] = link
            return delay
        }
        guard let delay else { return }
        group.next().scheduleTask(in: .milliseconds(delay)) { [self] in connect(to: replica) }
    }

    public func shutdown() async {
        let channels = state.withLockedValue { state -> [any Channel] in
            state.stopped = true
            return state.listeners + state.links.values.compactMap(\.channel) + Array(state.clients.values)
        }
        for channel in channels { try? await channel.close() }
    }
}

/// Tells the transport when an outbound link has authenticated.
final class LinkActivation: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    let transport: Transport
    let replica: ReplicaID

    init(transport: Transport, replica: ReplicaID) {
        self.transport = transport
        self.replica = replica
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is PeerAuthenticated { transport.linkUp(replica, channel: context.channel) }
        context.fireUserInboundEventTriggered(event)
    }
}
