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
/// byte of the payload is buffered, so a hostile length cannot make a replica allocate.
final class FrameDecoder: ByteToMessageDecoder {
    typealias InboundOut = ByteBuffer
    let maximum: Int

    init(maximum: Int) { self.maximum = maximum }

    func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let length = buffer.getInteger(at: buffer.readerIndex, endianness: .little, as: UInt32.self) else {
            return .needMoreData
        }
        guard Int(length) <= maximum else { throw FrameError.tooLarge(length: Int(length), max: maximum) }
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
