import CSodium

/// An ephemeral X25519 key pair for one connection's key exchange (libsodium `crypto_kx`).
/// Each side of a handshake makes a fresh one; both signatures of the handshake cover both
/// public halves, so a man in the middle cannot substitute its own.
public struct ExchangeKeyPair: Sendable {
    public let publicKey: Bytes32
    let secretKey: Bytes32

    /// `seed` (32 bytes) fixes the pair, for tests; the runtime uses `random()`.
    public init?(seed: [UInt8]) {
        guard seed.count == Int(crypto_kx_SEEDBYTES) else { return nil }
        Sodium.ensureReady()
        var secret = Bytes32.zero
        publicKey = Bytes32 { pk in
            secret = Bytes32 { sk in _ = crypto_kx_seed_keypair(pk, sk, seed) }
        }
        secretKey = secret
    }

    public static func random() -> ExchangeKeyPair { ExchangeKeyPair(seed: SecureRandom.bytes(Int(crypto_kx_SEEDBYTES)))! }

    /// The session keys of the side that opened the connection, or nil when the acceptor's
    /// public key is unusable (libsodium refuses low-order points).
    func connectorKeys(acceptor: Bytes32) -> SessionKeys? {
        sessionKeys(peer: acceptor, derive: crypto_kx_client_session_keys)
    }

    /// The session keys of the side that accepted the connection.
    func acceptorKeys(connector: Bytes32) -> SessionKeys? {
        sessionKeys(peer: connector, derive: crypto_kx_server_session_keys)
    }

    private func sessionKeys(
        peer: Bytes32,
        derive: (UnsafeMutablePointer<UInt8>?, UnsafeMutablePointer<UInt8>?, UnsafePointer<UInt8>, UnsafePointer<UInt8>,
                 UnsafePointer<UInt8>) -> Int32
    ) -> SessionKeys? {
        var status: Int32 = 0
        var receive = Bytes32.zero
        let send = Bytes32 { tx in
            receive = Bytes32 { rx in
                publicKey.withUnsafeBytes { pk in
                    secretKey.withUnsafeBytes { sk in
                        peer.withUnsafeBytes { other in
                            status = derive(rx, tx, pk.baseAddress!.assumingMemoryBound(to: UInt8.self),
                                            sk.baseAddress!.assumingMemoryBound(to: UInt8.self),
                                            other.baseAddress!.assumingMemoryBound(to: UInt8.self))
                        }
                    }
                }
            }
        }
        return status == 0 ? SessionKeys(send: send, receive: receive) : nil
    }
}

/// The two keys a handshake leaves each side: one authenticates the frames it sends, the
/// other the frames it receives (the peer's `send` is this side's `receive`).
public struct SessionKeys: Hashable, Sendable {
    public let send: Bytes32
    public let receive: Bytes32
}

/// Authenticates the frames of one direction of a connection: a keyed BLAKE2b tag over the
/// frame's position in the stream and its bytes. The position makes a replayed, dropped or
/// reordered frame fail, and the per-direction key a frame reflected back to its sender.
public struct FrameAuthenticator: Sendable {
    public static let tagBytes = 16
    let key: Bytes32
    /// Frames authenticated so far in this direction.
    public private(set) var position: UInt64 = 0

    public init(key: Bytes32) { self.key = key }

    /// The tag for the next frame, written to `out` (`tagBytes` long).
    public mutating func tag(_ frame: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer) {
        precondition(out.count == Self.tagBytes)
        compute(frame, into: out)
        position += 1
    }

    /// True when `tag` is the next frame's tag; a failure leaves the stream unusable (the
    /// caller closes the connection).
    public mutating func verify(_ frame: UnsafeRawBufferPointer, tag: UnsafeRawBufferPointer) -> Bool {
        guard tag.count == Self.tagBytes else { return false }
        var expected = (UInt64(0), UInt64(0))
        let equal = withUnsafeMutableBytes(of: &expected) { out in
            compute(frame, into: out)
            return sodium_memcmp(out.baseAddress!, tag.baseAddress!, Self.tagBytes) == 0
        }
        position += 1
        return equal
    }

    private func compute(_ frame: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer) {
        Sodium.ensureReady()
        // The state is 64-byte aligned in C, so Swift sees it only as an opaque pointer.
        withUnsafeTemporaryAllocation(byteCount: crypto_generichash_statebytes(), alignment: 64) { memory in
            compute(frame, into: out, state: OpaquePointer(memory.baseAddress!))
        }
    }

    private func compute(_ frame: UnsafeRawBufferPointer, into out: UnsafeMutableRawBufferPointer, state: OpaquePointer) {
        key.withUnsafeBytes { k in
            _ = crypto_generichash_init(state, k.baseAddress!.assumingMemoryBound(to: UInt8.self), k.count, Self.tagBytes)
        }
        withUnsafeBytes(of: position.littleEndian) { p in
            _ = crypto_generichash_update(state, p.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt64(p.count))
        }
        if frame.count > 0 {
            _ = crypto_generichash_update(state, frame.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt64(frame.count))
        }
        _ = crypto_generichash_final(state, out.baseAddress!.assumingMemoryBound(to: UInt8.self), Self.tagBytes)
    }
}
