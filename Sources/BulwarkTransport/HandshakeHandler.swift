import BulwarkCore
import NIOCore

/// Fired once the peer proved its identity; frames after it come from `role`.
struct PeerAuthenticated {
    let role: PeerRole
}

/// Runs the signed challenge-response on a fresh connection (both directions), then
/// authenticates every later frame with the session's keys: each frame sent gets a tag, each
/// frame received must carry the right one for its position in the stream, which is then
/// stripped. Nothing passes before authentication; any failure closes the connection.
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
    /// Set once the handshake succeeded: who the peer is, and each direction's authenticator.
    private struct Session {
        let peer: PeerRole
        var sender: FrameAuthenticator
        var receiver: FrameAuthenticator
    }
    private var session: Session?
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
        var frame = unwrapInboundIn(data)
        if session != nil {
            let length = frame.readableBytes - FrameAuthenticator.tagBytes
            let authentic = length >= 0 && frame.withUnsafeReadableBytes { bytes in
                session!.receiver.verify(UnsafeRawBufferPointer(rebasing: bytes[..<length]),
                                         tag: UnsafeRawBufferPointer(rebasing: bytes[length...]))
            }
            guard authentic else {
                onFailure("a frame from \(session!.peer) failed authentication")
                context.close(promise: nil)
                return
            }
            context.fireChannelRead(wrapInboundOut(frame.readSlice(length: length)!))
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
                let (response, outcome) = try connector.receive(challenge: message)
                send(response, context: context)
                authenticated(outcome, context: context)
            }
        } catch {
            onFailure("handshake failed: \(error)")
            context.close(promise: nil)
        }
    }

    private func authenticated(_ outcome: HandshakeOutcome, context: ChannelHandlerContext) {
        session = Session(peer: outcome.peer, sender: FrameAuthenticator(key: outcome.keys.send),
                          receiver: FrameAuthenticator(key: outcome.keys.receive))
        context.fireUserInboundEventTriggered(PeerAuthenticated(role: outcome.peer))
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard session != nil else {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        var frame = unwrapOutboundIn(data)
        var tag = (UInt64(0), UInt64(0))
        withUnsafeMutableBytes(of: &tag) { out in
            frame.withUnsafeReadableBytes { session!.sender.tag($0, into: out) }
        }
        withUnsafeBytes(of: tag) { _ = frame.writeBytes($0) }
        context.write(wrapOutboundOut(frame), promise: promise)
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
