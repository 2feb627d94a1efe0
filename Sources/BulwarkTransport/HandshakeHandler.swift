import BulwarkCore
import NIOCore

/// Fired once the peer proved its identity; frames after it come from `role`.
struct PeerAuthenticated {
    let role: PeerRole
}

/// Runs the signed challenge-response on a fresh connection (both directions), then
/// authenticates every later frame with the session's keys: each frame sent gets a tag, each
/// frame received must carry the right one for its position in the stream, which is then
/// stripped. Nothing passes before authentication; any failure closes the connection, and so
/// does a handshake not finished within its deadline (a peer that connects or accepts and then
/// stalls holds a descriptor only that long).
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
        var sender: FrameCipher
        var receiver: FrameCipher
    }
    private var session: Session?
    /// Why the connection is being closed, and the detail for the log.
    let onFailure: @Sendable (Transport.Refusal, String) -> Void
    let decoder: FrameDecoder
    let deadline: TimeAmount
    private var deadlineTask: Scheduled<Void>?

    init(_ side: Side, decoder: FrameDecoder, deadline: TimeAmount,
         onFailure: @escaping @Sendable (Transport.Refusal, String) -> Void) {
        self.side = side
        self.decoder = decoder
        self.deadline = deadline
        self.onFailure = onFailure
    }

    func channelActive(context: ChannelHandlerContext) {
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        let channel = context.channel
        deadlineTask = context.eventLoop.scheduleTask(in: deadline) {
            guard handler.value.session == nil else { return }
            handler.value.onFailure(.handshakeTimeout,
                                    "handshake not finished within \(handler.value.deadline.nanoseconds / 1_000_000) ms")
            channel.close(promise: nil)
        }
        if case let .connector(connector) = side { send(connector.hello, context: context) }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        deadlineTask?.cancel()
        context.fireChannelInactive()
    }

    private func send(_ message: HandshakeMessage, context: ChannelHandlerContext) {
        context.writeAndFlush(wrapOutboundOut(ByteBuffer(bytes: message.encoded())), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var frame = unwrapInboundIn(data)
        if session != nil {
            let length = frame.readableBytes - FrameCipher.tagBytes
            let authentic = length >= 0 && frame.withUnsafeMutableReadableBytes { bytes in
                session!.receiver.open(UnsafeMutableRawBufferPointer(rebasing: bytes[..<length]),
                                       tag: UnsafeRawBufferPointer(rebasing: bytes[length...]))
            }
            guard authentic else {
                onFailure(.badFrameTag, "a frame from \(session!.peer) failed authentication")
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
            onFailure(.handshakeFailed, "handshake failed: \(error)")
            context.close(promise: nil)
        }
    }

    private func authenticated(_ outcome: HandshakeOutcome, context: ChannelHandlerContext) {
        deadlineTask?.cancel()
        decoder.authenticated()
        session = Session(peer: outcome.peer, sender: FrameCipher(key: outcome.keys.send),
                          receiver: FrameCipher(key: outcome.keys.receive))
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
            frame.withUnsafeMutableReadableBytes { session!.sender.seal($0, tag: out) }
        }
        withUnsafeBytes(of: tag) { _ = frame.writeBytes($0) }
        context.write(wrapOutboundOut(frame), promise: promise)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        onFailure(session == nil ? .handshakeFailed : .connectionError, "connection error: \(error)")
        context.close(promise: nil)
    }
}

/// Delivers authenticated frames to the owner. When the owner answers that it is full, the
/// connection stops reading (`autoRead` off) until the transport resumes it.
final class FrameDelivery: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    let onAuthenticated: @Sendable (PeerRole, Channel) -> Void
    /// True: keep reading; false: pause this connection.
    let onFrame: @Sendable (PeerRole, [UInt8]) -> Bool
    /// Registers a paused connection; false when reading already resumed meanwhile.
    let onPause: @Sendable (Channel) -> Bool
    let onClose: @Sendable (PeerRole?, Channel) -> Void
    private var peer: PeerRole?

    init(onAuthenticated: @escaping @Sendable (PeerRole, Channel) -> Void, onFrame: @escaping @Sendable (PeerRole, [UInt8]) -> Bool,
         onPause: @escaping @Sendable (Channel) -> Bool, onClose: @escaping @Sendable (PeerRole?, Channel) -> Void) {
        self.onAuthenticated = onAuthenticated
        self.onFrame = onFrame
        self.onPause = onPause
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
        if !onFrame(peer, unwrapInboundIn(data).bytes) {
            // Off first, then registered: a resume between the two turns it on again.
            context.channel.setOption(.autoRead, value: false).whenComplete { _ in }
            if !onPause(context.channel) {
                context.channel.setOption(.autoRead, value: true).whenComplete { _ in }
            }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        onClose(peer, context.channel)
        context.fireChannelInactive()
    }
}
