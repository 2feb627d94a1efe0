import BulwarkCore
import NIOCore

/// Fired once the peer proved its identity; frames after it come from `role`.
struct PeerAuthenticated {
    let role: PeerRole
}

/// Runs the signed challenge-response on a fresh connection (both directions), then steps
/// aside: later frames pass through, and nothing passes before authentication. Any failure
/// closes the connection.
final class HandshakeHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    enum Side {
        case acceptor(HandshakeAcceptor)
        case connector(HandshakeConnector)
    }

    private var side: Side
    private var stage = 0
    private(set) var peer: PeerRole?
    let onFailure: @Sendable (String) -> Void

    init(_ side: Side, onFailure: @escaping @Sendable (String) -> Void) {
        self.side = side
        self.onFailure = onFailure
    }

    func channelActive(context: ChannelHandlerContext) {
        if case let .connector(connector) = side { send(connector.hello, context: context) }
        context.fireChannelActive()
    }

    private func send(_ message: HandshakeMessage, context: ChannelHandlerContext) {
        context.writeAndFlush(wrapOutboundOut(ByteBuffer(bytes: message.encoded())), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        if peer != nil {
            context.fireChannelRead(data)
            return
        }
        do {
            let message = try HandshakeMessage(decoding: frame.bytes)
            switch side {
            case var .acceptor(acceptor):
                if stage == 0 {
                    let challenge = try acceptor.receive(hello: message)
                    side = .acceptor(acceptor)
                    stage = 1
                    send(challenge, context: context)
                } else {
                    authenticated(try acceptor.receive(response: message), context: context)
                }
            case let .connector(connector):
                let response = try connector.receive(challenge: message)
                send(response, context: context)
                authenticated(.replica(connector.expected), context: context)
            }
        } catch {
            onFailure("handshake failed: \(error)")
            context.close(promise: nil)
        }
    }

    private func authenticated(_ role: PeerRole, context: ChannelHandlerContext) {
        peer = role
        context.fireUserInboundEventTriggered(PeerAuthenticated(role: role))
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard peer != nil else {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        context.write(data, promise: promise)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        onFailure("connection error: \(error)")
        context.close(promise: nil)
    }
}

/// Delivers authenticated frames to the owner.
final class FrameDelivery: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    let onAuthenticated: @Sendable (PeerRole, Channel) -> Void
    let onFrame: @Sendable (PeerRole, [UInt8]) -> Void
    let onClose: @Sendable (PeerRole?) -> Void
    private var peer: PeerRole?

    init(onAuthenticated: @escaping @Sendable (PeerRole, Channel) -> Void, onFrame: @escaping @Sendable (PeerRole, [UInt8]) -> Void,
         onClose: @escaping @Sendable (PeerRole?) -> Void) {
        self.onAuthenticated = onAuthenticated
        self.onFrame = onFrame
        self.onClose = onClose
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? PeerAuthenticated {
            peer = event.role
            onAuthenticated(event.role, context.channel)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let peer else { return }
        onFrame(peer, unwrapInboundIn(data).bytes)
    }

    func channelInactive(context: ChannelHandlerContext) {
        onClose(peer)
        context.fireChannelInactive()
    }
}
