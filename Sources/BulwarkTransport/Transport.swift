import BulwarkCore
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// Authenticated, framed TCP between replicas and from clients (ARCHITECTURE.md §5). A replica
/// listens for peers and clients; it keeps one outbound link to every other replica, which
/// reconnects with exponential backoff and, while down, queues at most `queueFramesMax` frames
/// and `queueBytesMax` bytes, dropping the oldest (counted). A connection whose other end does
/// not read holds at most `sendBufferBytesMax` unsent bytes; frames beyond that are dropped
/// (counted). So a slow, dead or hostile peer or client cannot grow memory or stall the others
/// (PITFALLS: buffers capped by count, not bytes); consensus retransmits what matters.
///
/// Strangers are bounded too (PITFALLS: descriptor exhaustion, pre-authentication buffers):
/// every handshake has a deadline; inbound connections are capped in all, and those still in
/// their handshake in all and per source address, so that descriptors stay free for storage;
/// and before authentication a frame may be no larger than a handshake message.
public final class Transport: Sendable {
    public struct Settings: Sendable {
        public var frameBytesMax: Int
        public var queueFramesMax = 4096
        public var queueBytesMax = 32 << 20
        public var sendBufferBytesMax = 16 << 20
        public var reconnectDelayMsMin: Int64 = 50
        public var reconnectDelayMsMax: Int64 = 2000
        /// A connection whose handshake has not finished this long after it opened is closed.
        public var handshakeTimeoutMs: Int64 = 3000
        /// Inbound connections at once, authenticated or not. A replica sets this from its
        /// descriptor limit, less what storage needs (`ReplicaNode.descriptorsReserved`).
        public var inboundConnectionsMax = 1024
        /// Inbound connections still in their handshake at once, in all and per source address.
        public var handshakingMax = 128
        public var handshakingPerSourceMax = 16
        /// Inbound connections at once from one source address (clients' keys cost nothing, so
        /// authenticated connections count too).
        public var connectionsPerSourceMax = 256
        /// Addresses of the validators' hosts. Connections from them are held to none of the
        /// handshake and per-source caps (a host's replicas and local tools may open many at
        /// once), only to the total, of which `trustedReserve` is kept for them: strangers
        /// elsewhere cannot crowd out the replicas.
        public var trustedSources: Set<String> = []
        public var trustedReserve = 64
        /// Bytes of answers waiting to be written to one client connection, beyond a single
        /// frame (which may always wait alone), and to all client connections together: a
        /// client that asks and never reads pins this much at most (SPEC.md §20).
        public var clientQueueBytesMax = 4 << 20
        public var clientQueueTotalBytesMax = 64 << 20
        /// An authenticated client connection with nothing read or written this long is closed
        /// (0: never).
        public var clientIdleTimeoutMs: Int64 = 120_000
        /// Whether `frameBytesMax` follows the configuration's (a replica's and a client's
        /// transport): an epoch that changes it changes the limit (see `update(config:)`).
        public var frameBytesMaxFollowsConfig = false

        public init(frameBytesMax: Int) { self.frameBytesMax = frameBytesMax }
    }

    /// Why an inbound connection or a frame was refused, counted by reason.
    public enum Refusal: String, CaseIterable, Sendable {
        /// The handshake failed (wrong cluster, key or signature, malformed, too large).
        case handshakeFailed = "handshake_failed"
        /// The handshake did not finish within `handshakeTimeoutMs`.
        case handshakeTimeout = "handshake_timeout"
        /// `inboundConnectionsMax` connections were open.
        case connectionLimit = "connection_limit"
        /// `handshakingMax` connections were in their handshake.
        case handshakeLimit = "handshake_limit"
        /// `handshakingPerSourceMax` connections from this address were in their handshake.
        case sourceLimit = "source_limit"
        /// A frame failed its authentication tag after the handshake.
        case badFrameTag = "bad_frame_tag"
        /// An authenticated connection failed otherwise (a frame over the limit, a reset).
        case connectionError = "connection_error"
        /// An answer to a client dropped: its connection, or all client connections together,
        /// had their budget of unwritten bytes (a client that does not read).
        case clientNotReading = "client_not_reading"
        /// A client connection closed after `clientIdleTimeoutMs` without traffic.
        case clientIdle = "client_idle"
    }

    let group: any EventLoopGroup
    /// The configuration whose validators this transport reaches and accepts; replaced by
    /// `update` when a new epoch begins.
    var config: ClusterConfig { state.withLockedValue { $0.config } }
    /// Who this end is: a replica (listens, and links to its peers' replica addresses) or a
    /// client (links to the replicas' client addresses).
    let role: PeerRole
    let key: PrivateKey
    let settings: Settings
    let logger: Logger
    let onFrame: @Sendable (PeerRole, [UInt8]) -> Void
    let state: NIOLockedValueBox<State>

    struct State {
        var config: ClusterConfig
        /// The largest frame payload accepted on connections built from now on.
        var frameBytesMax: Int
        var links: [ReplicaID: Link] = [:]
        /// Inbound authenticated connections from clients, by key, for replies. The newest
        /// connection of a key wins; an older one's close leaves it in place.
        var clients: [PublicKey: any Channel] = [:]
        /// Inbound authenticated connections from replicas, by id: frames for a replica whose
        /// own address this transport cannot reach (it moved in an epoch this replica is not in
        /// yet, or the other way round) go back on the connection it opened.
        var inboundReplicas: [ReplicaID: any Channel] = [:]
        var listeners: [any Channel] = []
        var dropped: UInt64 = 0
        var refusals: [Refusal: UInt64] = [:]
        var stopped = false
        /// Inbound connections open, and those of them still in their handshake (by source).
        var inbound = 0
        var handshaking = 0
        var handshakingBySource: [String: Int] = [:]
        var inboundBySource: [String: Int] = [:]
        /// Every inbound connection, closed on shutdown.
        var inboundChannels: [ObjectIdentifier: any Channel] = [:]
        /// While set, connections that deliver a frame stop reading (back-pressure from an
        /// owner whose inbox is full); `paused` holds them until `resumeReading`.
        var readingPaused = false
        var paused: [ObjectIdentifier: any Channel] = [:]
        /// Bytes handed to client connections and not yet written, per connection and in all.
        var clientPending: [ObjectIdentifier: Int] = [:]
        var clientPendingTotal = 0
    }

    /// Where the outbound connection to one replica stands. Every way a connection ends leads
    /// out of `connecting` and `handshaking`: a failed connect, a close during the handshake
    /// (including its deadline) and a close after it.
    public enum LinkState: String, Sendable {
        /// No connection and none wanted: the next frame starts one.
        case idle
        case connecting
        /// Connected; the handshake has not authenticated the peer yet.
        case handshaking
        case up
        /// Waiting before the next attempt (exponential, up to `reconnectDelayMsMax`).
        case backingOff = "backing-off"
    }

    /// The outbound side towards one replica.
    struct Link {
        var state: LinkState = .idle
        /// The connection in `handshaking` or `up`.
        var channel: (any Channel)?
        var queue = CircularBuffer<ByteBuffer>()
        var queuedBytes = 0
        var delayMs: Int64
    }

    /// One inbound connection's place in the counts. `authenticated` is read and written only
    /// under the transport's `state` lock.
    final class Admission: @unchecked Sendable {
        let source: String
        var authenticated = false
        init(source: String) { self.source = source }
    }

    public init(group: any EventLoopGroup, config: ClusterConfig, role: PeerRole, key: PrivateKey, settings: Settings,
                logger: Logger, onFrame: @escaping @Sendable (PeerRole, [UInt8]) -> Void) {
        self.group = group
        state = NIOLockedValueBox(State(config: config, frameBytesMax: settings.frameBytesMax))
        self.role = role
        self.key = key
        self.settings = settings
        self.logger = logger
        self.onFrame = onFrame
    }

    /// A new epoch's configuration: later connections authenticate against it, and the link
    /// to every validator that left it, or whose key or address changed, is closed (and the
    /// next frame to one that stays reconnects to its new address with its new key).
    ///
    /// With `frameBytesMaxFollowsConfig`, an epoch that changes `frameBytesMax` sets the limit
    /// to the larger of the two epochs' (frames of the old epoch still arrive around the
    /// boundary), and closes every connection built with the old limit: links reconnect, peers
    /// and clients connect again, all under the new one.
    public func update(config next: ClusterConfig) {
        let closing = state.withLockedValue { state -> [any Channel] in
            let previous = state.config
            state.config = next
            var closing: [any Channel] = []
            let (before, after) = (previous.parameters.frameBytesMax, next.parameters.frameBytesMax)
            if settings.frameBytesMaxFollowsConfig, before != after {
                state.frameBytesMax = max(before, after)
                closing += state.links.keys.sorted().compactMap { state.links[$0]?.channel }
                closing += state.inboundChannels.values
                return closing
            }
            for replica in state.links.keys.sorted() where previous.validator(replica) != next.validator(replica) {
                if let channel = state.links[replica]?.channel { closing.append(channel) }
                state.links[replica] = nil
            }
            // A connection authenticated with a key the new epoch no longer gives that id.
            for replica in state.inboundReplicas.keys.sorted() where previous.validator(replica)?.publicKey != next.validator(replica)?.publicKey {
                if let channel = state.inboundReplicas.removeValue(forKey: replica) { closing.append(channel) }
            }
            return closing
        }
        for channel in closing { channel.close(promise: nil) }
    }

    /// Frames dropped because a peer's queue was full, and connections refused (all reasons).
    public var counters: (dropped: UInt64, refused: UInt64) {
        state.withLockedValue { ($0.dropped, $0.refusals.values.reduce(0, +)) }
    }

    /// Refused connections and frames, by reason.
    public var refusals: [Refusal: UInt64] { state.withLockedValue { $0.refusals } }

    /// Inbound connections open now, and those of them still in their handshake.
    public var inboundConnections: (open: Int, handshaking: Int) { state.withLockedValue { ($0.inbound, $0.handshaking) } }

    /// For each replica this transport sends to: its link's state, and how many frames wait.
    public var links: [(replica: ReplicaID, state: LinkState, queuedFrames: Int)] {
        state.withLockedValue { state in
            state.links.keys.sorted().map { ($0, state.links[$0]!.state, state.links[$0]!.queue.count) }
        }
    }

    func refuse(_ reason: Refusal, _ detail: String) {
        state.withLockedValue { $0.refusals[reason, default: 0] += 1 }
        logger.debug("peer refused", metadata: ["reason": "\(reason.rawValue)", "detail": "\(detail)"])
    }

    func pipeline(_ channel: any Channel, side: HandshakeHandler.Side, admission: Admission? = nil) -> EventLoopFuture<Void> {
        let onFrame = self.onFrame
        let maximum = state.withLockedValue { $0.frameBytesMax }
        let deadline = TimeAmount.milliseconds(settings.handshakeTimeoutMs)
        return channel.eventLoop.makeCompletedFuture {
            // Frames carry an authentication tag beyond the payload limit.
            let decoder = FrameDecoder(maximum: maximum + FrameCipher.tagBytes)
            try channel.pipeline.syncOperations.addHandlers([
                ByteToMessageHandler(decoder, maximumBufferSize: maximum + FrameCipher.tagBytes + 8),
                MessageToByteHandler(FrameEncoder()),
                HandshakeHandler(side, decoder: decoder, deadline: deadline, onFailure: { [weak self] reason, detail in
                    self?.refuse(reason, detail)
                }),
                FrameDelivery(
                    onAuthenticated: { [weak self] role, channel in
                        if admission != nil, case .client = role, let self, self.settings.clientIdleTimeoutMs > 0 {
                            let idle = IdleStateHandler(allTimeout: .milliseconds(self.settings.clientIdleTimeoutMs))
                            try? channel.pipeline.syncOperations.addHandlers([idle, CloseWhenIdle { [weak self] in
                                self?.refuse(.clientIdle, "no traffic for \(self?.settings.clientIdleTimeoutMs ?? 0) ms")
                            }], position: .first)
                        }
                        self?.state.withLockedValue { state in
                            if let admission, !admission.authenticated {
                                admission.authenticated = true
                                Self.leaveHandshake(&state, source: admission.source)
                            }
                            if case let .client(key) = role { state.clients[key] = channel }
                            if admission != nil, case let .replica(id) = role { state.inboundReplicas[id] = channel }
                        }
                    },
                    onFrame: { [weak self] role, bytes in
                        onFrame(role, bytes)
                        return self?.state.withLockedValue { $0.readingPaused } != true
                    },
                    onPause: { [weak self] channel in
                        self?.state.withLockedValue { state -> Bool in
                            guard state.readingPaused else { return false }
                            state.paused[ObjectIdentifier(channel)] = channel
                            return true
                        } ?? false
                    },
                    onClose: { [weak self] role, channel in
                        self?.state.withLockedValue { state in
                            state.paused[ObjectIdentifier(channel)] = nil
                            if case let .client(key) = role, state.clients[key] === channel { state.clients[key] = nil }
                            if case let .replica(id) = role, state.inboundReplicas[id] === channel { state.inboundReplicas[id] = nil }
                        }
                    }),
            ])
        }
    }

    static func leaveHandshake(_ state: inout State, source: String) {
        state.handshaking -= 1
        let left = (state.handshakingBySource[source] ?? 1) - 1
        state.handshakingBySource[source] = left > 0 ? left : nil
    }

    /// Admits an inbound connection within the limits, or says why not. Its close gives its
    /// place back.
    func admit(_ channel: any Channel) -> Admission? {
        let source = channel.remoteAddress?.ipAddress ?? "unknown"
        let trusted = settings.trustedSources.contains(source)
        let id = ObjectIdentifier(channel)
        let refusal = state.withLockedValue { state -> Refusal? in
            if state.inbound >= settings.inboundConnectionsMax - (trusted ? 0 : settings.trustedReserve) { return .connectionLimit }
            if !trusted, state.handshaking >= settings.handshakingMax { return .handshakeLimit }
            if !trusted, state.handshakingBySource[source, default: 0] >= settings.handshakingPerSourceMax { return .sourceLimit }
            if !trusted, state.inboundBySource[source, default: 0] >= settings.connectionsPerSourceMax { return .sourceLimit }
            state.inbound += 1
            state.inboundBySource[source, default: 0] += 1
            state.handshaking += 1
            state.handshakingBySource[source, default: 0] += 1
            state.inboundChannels[id] = channel
            return nil
        }
        if let refusal {
            refuse(refusal, "from \(source)")
            return nil
        }
        let admission = Admission(source: source)
        channel.closeFuture.whenComplete { [weak self] _ in
            self?.state.withLockedValue { state in
                state.inbound -= 1
                let left = (state.inboundBySource[source] ?? 1) - 1
                state.inboundBySource[source] = left > 0 ? left : nil
                state.inboundChannels[id] = nil
                if !admission.authenticated { Self.leaveHandshake(&state, source: source) }
            }
        }
        return admission
    }

    /// Back-pressure from the owner: while paused, every connection that delivers a frame
    /// stops reading until `resumeReading`, so the kernel's buffers and then the peer's send
    /// queue hold what the owner cannot take yet.
    public func pauseReading() { state.withLockedValue { $0.readingPaused = true } }

    public func resumeReading() {
        let channels = state.withLockedValue { state -> [any Channel] in
            state.readingPaused = false
            defer { state.paused = [:] }
            return Array(state.paused.values)
        }
        for channel in channels { channel.setOption(.autoRead, value: true).whenComplete { _ in channel.read() } }
    }

    /// Listens on exactly `addresses` (a replica moved by a new epoch): binds the new ones
    /// first, then closes listeners on any other address. A failure to bind is logged; the
    /// old listeners stay so that the replica stays reachable.
    public func listenOnly(at addresses: [(host: String, port: Int)], logger: Logger) async {
        let current = state.withLockedValue { $0.listeners }
        let bound = current.compactMap { $0.localAddress.map { ($0.ipAddress ?? "", $0.port ?? 0) } }
        for (host, port) in addresses where !bound.contains(where: { $0.1 == port }) {
            do { _ = try await listen(host: host, port: port) } catch {
                logger.error("cannot listen at the address of the new epoch", metadata: ["address": "\(host):\(port)", "error": "\(error)"])
                return
            }
        }
        let stale = state.withLockedValue { state -> [any Channel] in
            let (keep, drop) = (state.listeners.filter { l in addresses.contains { $0.port == l.localAddress?.port } },
                                state.listeners.filter { l in !addresses.contains { $0.port == l.localAddress?.port } })
            state.listeners = keep
            return drop
        }
        for channel in stale { try? await channel.close() }
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
                guard let admission = admit(channel) else {
                    return channel.close()
                }
                return pipeline(channel, side: .acceptor(HandshakeAcceptor(config: config, id: id, key: key,
                                                                           nonce: Digest(SecureRandom.bytes(32))!,
                                                                           exchange: .random())),
                                admission: admission)
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
            if link.state == .up, let channel = link.channel, channel.isActive {
                guard channel.isWritable else {
                    state.dropped += 1
                    return (nil, false)
                }
                return (channel, false)
            }
            // No link of our own (yet): a connection the peer opened carries the frame, and the
            // link is still attempted for the next ones.
            if let inbound = state.inboundReplicas[replica], inbound.isActive, inbound.isWritable {
                guard link.state == .idle else { return (inbound, false) }
                link.state = .connecting
                return (inbound, true)
            }
            link.queue.append(buffer)
            link.queuedBytes += buffer.readableBytes
            while link.queue.count > 1,
                  link.queue.count > settings.queueFramesMax || link.queuedBytes > settings.queueBytesMax {
                link.queuedBytes -= link.queue.removeFirst().readableBytes
                state.dropped += 1
            }
            // An `up` link whose channel is no longer active closes shortly; its close handler
            // reconnects since the queue is not empty.
            guard link.state == .idle else { return (nil, false) }
            link.state = .connecting
            return (nil, true)
        }
        if let channel { channel.writeAndFlush(buffer, promise: nil) }
        if connect { self.connect(to: replica) }
    }

    /// Sends a frame to an authenticated client, if it is connected here.
    public func send(_ frame: [UInt8], toClient client: PublicKey) {
        let bytes = frame.count
        let channel = state.withLockedValue { state -> (any Channel)? in
            guard let channel = state.clients[client] else { return nil }
            let id = ObjectIdentifier(channel)
            let pending = state.clientPending[id, default: 0]
            // The frame being written counts: one may wait alone on a connection; beyond it the
            // connection's and the total budget hold.
            guard channel.isWritable, pending == 0 || pending + bytes <= settings.clientQueueBytesMax,
                  state.clientPendingTotal + bytes <= max(settings.clientQueueTotalBytesMax, bytes) else {
                state.refusals[.clientNotReading, default: 0] += 1
                return nil
            }
            state.clientPending[id] = pending + bytes
            state.clientPendingTotal += bytes
            return channel
        }
        guard let channel else { return }
        let id = ObjectIdentifier(channel)
        let written = channel.eventLoop.makePromise(of: Void.self)
        // Fulfilled once the bytes reached the socket, or failed when the connection closed.
        written.futureResult.whenComplete { [weak self] _ in
            self?.state.withLockedValue { state in
                let left = state.clientPending[id, default: bytes] - bytes
                state.clientPending[id] = left > 0 ? left : nil
                state.clientPendingTotal -= bytes
            }
        }
        channel.writeAndFlush(ByteBuffer(bytes: frame), promise: written)
    }

    /// Whether nothing waits unwritten on `client`'s connection and the clients' total budget
    /// has room: the owner skips serving work for a client that is not reading.
    public func isReading(client: PublicKey) -> Bool {
        state.withLockedValue { state in
            guard let channel = state.clients[client] else { return true }
            return state.clientPending[ObjectIdentifier(channel), default: 0] == 0
                && state.clientPendingTotal < settings.clientQueueTotalBytesMax
        }
    }

    /// Bytes handed to client connections and not yet written (for tests and metrics).
    public var clientBytesPending: Int { state.withLockedValue { $0.clientPendingTotal } }

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
            // Under load the handshake may already have finished (`linkUp` ran first and the
            // link is up on this channel): then only the close handler is left to register.
            let open = state.withLockedValue { state -> Bool in
                guard !state.stopped, var link = state.links[replica] else { return false }
                defer { state.links[replica] = link }
                if link.state == .up, link.channel === channel { return true }
                guard link.state == .connecting else { return false }
                link.state = .handshaking
                link.channel = channel
                return true
            }
            guard open else {
                channel.close(promise: nil)
                return
            }
            channel.closeFuture.whenComplete { [self] _ in closed(replica, channel: channel) }
        }
    }

    /// The link's connection closed, during its handshake (failed, or past its deadline) or
    /// after it: back off and try again if frames wait, else rest until the next frame.
    func closed(_ replica: ReplicaID, channel: any Channel) {
        let reconnect = state.withLockedValue { state -> Bool in
            guard !state.stopped, var link = state.links[replica], link.channel === channel else { return false }
            defer { state.links[replica] = link }
            let wasUp = link.state == .up
            link.channel = nil
            guard !link.queue.isEmpty || !wasUp else {
                link.state = .idle
                return false
            }
            return true
        }
        if reconnect { retry(replica) }
    }

    /// Called on the link's event loop once the handshake authenticated the peer: flush the queue.
    func linkUp(_ replica: ReplicaID, channel: any Channel) {
        let queued = state.withLockedValue { state -> [ByteBuffer] in
            // The channel of this attempt: recorded already (`handshaking`), or not yet when
            // the handshake beat the connect callback (`connecting`).
            guard let link = state.links[replica], !state.stopped,
                  link.state == .handshaking && link.channel === channel || link.state == .connecting && link.channel == nil
            else { return [] }
            state.links[replica]?.channel = channel
            state.links[replica]?.state = .up
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
            link.state = .backingOff
            link.channel = nil
            state.links[replica] = link
            return delay
        }
        guard let delay else { return }
        group.next().scheduleTask(in: .milliseconds(delay)) { [self] in
            let go = state.withLockedValue { state -> Bool in
                guard !state.stopped, state.links[replica]?.state == .backingOff else { return false }
                state.links[replica]?.state = .connecting
                return true
            }
            if go { connect(to: replica) }
        }
    }

    public func shutdown() async {
        let channels = state.withLockedValue { state -> [any Channel] in
            state.stopped = true
            return state.listeners + state.links.values.compactMap(\.channel) + Array(state.inboundChannels.values)
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

/// Closes a connection on the idle event of an `IdleStateHandler` before it.
final class CloseWhenIdle: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    let onIdle: @Sendable () -> Void

    init(onIdle: @escaping @Sendable () -> Void) { self.onIdle = onIdle }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            onIdle()
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }
}
