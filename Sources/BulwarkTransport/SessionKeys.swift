import BulwarkCore
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

/// The two keys a handshake leaves each side: one encrypts the frames it sends, the other
/// opens the frames it receives (the peer's `send` is this side's `receive`).
public struct SessionKeys: Hashable, Sendable {
    public let send: Bytes32
    public let receive: Bytes32
}

/// Encrypts and authenticates the frames of one direction of a connection (SPEC.md §15):
/// ChaCha20-Poly1305 (IETF) with the direction's key, the frame's position in the stream as
/// the nonce, and a 16-byte tag. The position makes a replayed, dropped or reordered frame
/// fail, and the per-direction key a frame reflected back to its sender; no position is ever
/// used twice with one key, since each connection's handshake makes fresh keys.
public struct FrameCipher: Sendable {
    public static let tagBytes = Int(crypto_aead_chacha20poly1305_ietf_ABYTES)
    let key: Bytes32
    /// Frames sealed or opened so far in this direction.
    public private(set) var position: UInt64 = 0

    public init(key: Bytes32) { self.key = key }

    /// The 12-byte IETF nonce for the current position: position (little-endian) ∥ 4 zero bytes.
    private var nonce: (UInt64, UInt32) { (position.littleEndian, 0) }

    /// Encrypts the next frame in place and writes its tag to `tag` (`tagBytes` long).
    public mutating func seal(_ frame: UnsafeMutableRawBufferPointer, tag: UnsafeMutableRawBufferPointer) {
        precondition(tag.count == Self.tagBytes)
        Sodium.ensureReady()
        var nonce = self.nonce
        Self.withBytes(frame) { bytes in
            withUnsafeBytes(of: &nonce) { n in
                key.withUnsafeBytes { k in
                    _ = crypto_aead_chacha20poly1305_ietf_encrypt_detached(
                        bytes, tag.baseAddress!.assumingMemoryBound(to: UInt8.self), nil, bytes, UInt64(frame.count), nil, 0, nil,
                        n.baseAddress!.assumingMemoryBound(to: UInt8.self), k.baseAddress!.assumingMemoryBound(to: UInt8.self))
                }
            }
        }
        position += 1
    }

    /// `frame`'s bytes as libsodium takes them (a valid pointer even for an empty frame).
    private static func withBytes<R>(_ frame: UnsafeMutableRawBufferPointer, _ body: (UnsafeMutablePointer<UInt8>) -> R) -> R {
        if let base = frame.baseAddress { return body(base.assumingMemoryBound(to: UInt8.self)) }
        var empty: UInt8 = 0
        return withUnsafeMutablePointer(to: &empty, body)
    }

    /// Decrypts the next frame in place if `tag` authenticates it; false otherwise (the frame
    /// is then left as it was, and the stream unusable: the caller closes the connection).
    public mutating func open(_ frame: UnsafeMutableRawBufferPointer, tag: UnsafeRawBufferPointer) -> Bool {
        guard tag.count == Self.tagBytes else { return false }
        Sodium.ensureReady()
        var nonce = self.nonce
        let status = Self.withBytes(frame) { bytes in
            withUnsafeBytes(of: &nonce) { n in
                key.withUnsafeBytes { k in
                    crypto_aead_chacha20poly1305_ietf_decrypt_detached(
                        bytes, nil, bytes, UInt64(frame.count), tag.baseAddress!.assumingMemoryBound(to: UInt8.self), nil, 0,
                        n.baseAddress!.assumingMemoryBound(to: UInt8.self), k.baseAddress!.assumingMemoryBound(to: UInt8.self))
                }
            }
        }
        position += 1
        return status == 0
    }
}
