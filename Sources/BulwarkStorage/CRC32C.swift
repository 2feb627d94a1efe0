/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of every stored record.
/// Eight bytes per step with eight tables ("slicing-by-8"): every block-log and WAL write and
/// every read at start-up checksums its bytes, so a byte-at-a-time loop showed in profiles.
public enum CRC32C {
    /// `tables[k][b]`: the CRC register after feeding byte `b` followed by `k` zero bytes.
    static let tables: [UInt32] = {
        var t = [UInt32](repeating: 0, count: 8 * 256)
        for index in 0..<256 {
            var crc = UInt32(index)
            for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
            t[index] = crc
        }
        for k in 1..<8 {
            for index in 0..<256 {
                let previous = t[(k - 1) * 256 + index]
                t[k * 256 + index] = t[Int(previous & 0xff)] ^ (previous >> 8)
            }
        }
        return t
    }()

    public static func checksum(_ bytes: some Sequence<UInt8>, seed: UInt32 = 0) -> UInt32 {
        if let crc = bytes.withContiguousStorageIfAvailable({ checksum(UnsafeRawBufferPointer($0), seed: seed) }) {
            return crc
        }
        return checksum(Array(bytes), seed: seed)
    }

    public static func checksum(_ bytes: UnsafeRawBufferPointer, seed: UInt32 = 0) -> UInt32 {
        var crc = ~seed
        tables.withUnsafeBufferPointer { t in
            var offset = 0
            let count = bytes.count
            while count - offset >= 8 {
                let word = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
                    ^ UInt64(crc)
                crc = t[7 * 256 + Int(word & 0xff)] ^ t[6 * 256 + Int((word >> 8) & 0xff)]
                    ^ t[5 * 256 + Int((word >> 16) & 0xff)] ^ t[4 * 256 + Int((word >> 24) & 0xff)]
                    ^ t[3 * 256 + Int((word >> 32) & 0xff)] ^ t[2 * 256 + Int((word >> 40) & 0xff)]
                    ^ t[1 * 256 + Int((word >> 48) & 0xff)] ^ t[Int(word >> 56)]
                offset += 8
            }
            while offset < count {
                crc = t[Int((crc ^ UInt32(bytes[offset])) & 0xff)] ^ (crc >> 8)
                offset += 1
            }
        }
        return ~crc
    }
}
