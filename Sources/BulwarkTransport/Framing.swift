import NIOCore

/// Why a peer's bytes were refused.
public enum FrameError: Error, Equatable, CustomStringConvertible {
    case tooLarge(length: Int, max: Int)

    public var description: String {
        switch self {
        case let .tooLarge(length, max): return "frame of \(length) bytes exceeds the \(max)-byte limit"
        }
    }
}

/// `[u32 little-endian length][payload]`. The length is checked against the limit before a
/// byte of the payload is buffered, so a hostile length cannot make a replica allocate. Until
/// the handshake authenticated the peer, the limit is that of a handshake message
/// (`preAuthenticationBytesMax`): a stranger cannot make the replica hold a large frame
/// (PITFALLS: pre-authentication buffers). `HandshakeHandler` raises it once the peer is known.
final class FrameDecoder: ByteToMessageDecoder {
    typealias InboundOut = ByteBuffer
    /// The largest handshake message is 131 bytes; twice that leaves room without mattering.
    static let preAuthenticationBytesMax = 256
    private(set) var maximum: Int
    let authenticatedMaximum: Int

    init(maximum: Int) {
        self.maximum = min(maximum, Self.preAuthenticationBytesMax)
        self.authenticatedMaximum = maximum
    }

    /// The peer proved who it is: frames up to the full limit are accepted from now on.
    func authenticated() { maximum = authenticatedMaximum }

    func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let length = buffer.getInteger(at: buffer.readerIndex, endianness: .little, as: UInt32.self) else {
            return .needMoreData
        }
        // Compared as UInt64: a length near 2^32 is never converted to something it is not.
        guard UInt64(length) <= UInt64(maximum) else { throw FrameError.tooLarge(length: Int(length), max: maximum) }
        guard buffer.readableBytes >= 4 + Int(length) else { return .needMoreData }
        buffer.moveReaderIndex(forwardBy: 4)
        context.fireChannelRead(wrapInboundOut(buffer.readSlice(length: Int(length))!))
        return .continue
    }
}

final class FrameEncoder: MessageToByteEncoder {
    typealias OutboundIn = ByteBuffer

    func encode(data: ByteBuffer, out: inout ByteBuffer) throws {
        out.writeInteger(UInt32(data.readableBytes), endianness: .little)
        out.writeImmutableBuffer(data)
    }
}

extension ByteBuffer {
    var bytes: [UInt8] { getBytes(at: readerIndex, length: readableBytes) ?? [] }
}
