import BulwarkCore
import BulwarkTestSupport
import BulwarkTransport
import Testing

@Suite struct HandshakeTests {
    let config = TestKeys.config(n: 4)
    func nonce(_ n: UInt8) -> Digest { Digest(Array(repeating: n, count: 32))! }
    func exchange(_ n: UInt8) -> ExchangeKeyPair { ExchangeKeyPair(seed: Array(repeating: n, count: 32))! }

    func acceptor(_ id: ReplicaID = 2, key: PrivateKey? = nil, nonce n: UInt8 = 1) -> HandshakeAcceptor {
        HandshakeAcceptor(config: config, id: id, key: key ?? TestKeys.key(Int(id)), nonce: nonce(n), exchange: exchange(n))
    }

    func connector(role: PeerRole, key: PrivateKey, expected: ReplicaID = 2, config: ClusterConfig? = nil) -> HandshakeConnector {
        HandshakeConnector(config: config ?? self.config, role: role, key: key, nonce: nonce(2), exchange: exchange(2),
                           expected: expected)
    }

    func run(role: PeerRole, connectorKey: PrivateKey, acceptor id: ReplicaID = 2, expected: ReplicaID = 2,
             acceptorKey: PrivateKey? = nil) throws(HandshakeError) -> PeerRole {
        var server = acceptor(id, key: acceptorKey)
        let client = connector(role: role, key: connectorKey, expected: expected)
        let challenge = try server.receive(hello: client.hello)
        let (response, _) = try client.receive(challenge: challenge)
        return try server.receive(response: response).peer
    }

    @Test func replicasAndClientsAuthenticate() throws {
        #expect(try run(role: .replica(1), connectorKey: TestKeys.key(1)) == .replica(1))
        let client = TestKeys.key(70)
        #expect(try run(role: .client(client.publicKey), connectorKey: client) == .client(client.publicKey))
    }

    @Test func aPeerClaimingAnotherReplicasIdentityIsRefused() {
        #expect(throws: HandshakeError.badSignature) { _ = try run(role: .replica(1), connectorKey: TestKeys.key(3)) }
        #expect(throws: HandshakeError.badSignature) {
            _ = try run(role: .client(TestKeys.key(70).publicKey), connectorKey: TestKeys.key(71))
        }
        #expect(throws: HandshakeError.unknownReplica(9)) { _ = try run(role: .replica(9), connectorKey: TestKeys.key(9)) }
    }

    @Test func anImpostorAcceptorIsRefused() {
        // Something listening at replica 2's address without replica 2's key.
        #expect(throws: HandshakeError.badSignature) {
            _ = try run(role: .replica(1), connectorKey: TestKeys.key(1), acceptorKey: TestKeys.key(3))
        }
        #expect(throws: HandshakeError.unexpectedReplica(expected: 2, found: 3)) {
            _ = try run(role: .replica(1), connectorKey: TestKeys.key(1), acceptor: 3, expected: 2)
        }
    }

    @Test func anotherClusterIsRefused() {
        let other = TestKeys.config(n: 4, cluster: ClusterID(raw: Bytes32(Array(repeating: 8, count: 32))!))
        var server = acceptor()
        let client = connector(role: .replica(1), key: TestKeys.key(1), config: other)
        #expect(throws: HandshakeError.wrongCluster) { _ = try server.receive(hello: client.hello) }
    }

    /// A response recorded in one session is worthless in another (the nonces differ).
    @Test func responsesDoNotReplayAcrossSessions() throws {
        var first = acceptor()
        let client = connector(role: .replica(1), key: TestKeys.key(1))
        let (response, _) = try client.receive(challenge: try first.receive(hello: client.hello))
        var second = acceptor(nonce: 5)
        _ = try second.receive(hello: client.hello)
        #expect(throws: HandshakeError.badSignature) { _ = try second.receive(response: response) }
        #expect(throws: HandshakeError.unexpectedMessage) { _ = try second.receive(hello: client.hello) }
    }

    @Test func messagesRoundTrip() throws {
        let messages: [HandshakeMessage] = [
            .hello(cluster: config.clusterID, role: .client(TestKeys.key(1).publicKey), nonce: nonce(3), exchange: exchange(3).publicKey),
            .challenge(replica: 3, nonce: nonce(4), exchange: exchange(4).publicKey, signature: Signature(Array(repeating: 5, count: 64))!),
            .response(signature: Signature(Array(repeating: 6, count: 64))!),
        ]
        for m in messages { #expect(try HandshakeMessage(decoding: m.encoded()) == m) }
    }

    /// Both ends leave with the same two keys, crossed: what one sends with, the other
    /// receives with; the two directions differ.
    @Test func bothEndsAgreeOnSessionKeys() throws {
        var server = acceptor()
        let client = connector(role: .client(TestKeys.key(70).publicKey), key: TestKeys.key(70))
        let (response, connected) = try client.receive(challenge: try server.receive(hello: client.hello))
        let accepted = try server.receive(response: response)
        #expect(connected.keys.send == accepted.keys.receive && connected.keys.receive == accepted.keys.send)
        #expect(connected.keys.send != connected.keys.receive)
        #expect(connected.peer == .replica(2) && accepted.peer == .client(TestKeys.key(70).publicKey))
    }

    /// A man in the middle that swaps in its own exchange key (to learn the session keys)
    /// breaks the signature over it, on either side.
    @Test func aSubstitutedExchangeKeyIsRefused() throws {
        var server = acceptor()
        let client = connector(role: .replica(1), key: TestKeys.key(1))
        guard case let .hello(cluster, role, nonce, _) = client.hello else { Issue.record("not a hello"); return }
        let forgedHello = HandshakeMessage.hello(cluster: cluster, role: role, nonce: nonce, exchange: exchange(9).publicKey)
        let challenge = try server.receive(hello: forgedHello)
        // The challenge, relayed as is, covers the forged key, which the connector did not send.
        #expect(throws: HandshakeError.badSignature) { _ = try client.receive(challenge: challenge) }

        var honest = acceptor()
        guard case let .challenge(replica, acceptorNonce, _, signature) = try honest.receive(hello: client.hello) else {
            Issue.record("not a challenge"); return
        }
        let forgedChallenge = HandshakeMessage.challenge(replica: replica, nonce: acceptorNonce, exchange: exchange(9).publicKey,
                                                         signature: signature)
        #expect(throws: HandshakeError.badSignature) { _ = try client.receive(challenge: forgedChallenge) }
    }

    /// Frames are encrypted and authenticated in order: what travels is not the frame, and a
    /// frame altered, replayed, reordered or sent back to its sender fails.
    @Test func framesAreEncryptedAndAuthenticatedInOrder() throws {
        let keys = (send: Bytes32(Array(repeating: 1, count: 32))!, receive: Bytes32(Array(repeating: 2, count: 32))!)
        /// Each frame sealed in turn: its ciphertext and tag.
        func seal(_ frames: [[UInt8]], key: Bytes32) -> [(ciphertext: [UInt8], tag: [UInt8])] {
            var sender = FrameCipher(key: key)
            return frames.map { frame in
                var bytes = frame
                var tag = [UInt8](repeating: 0, count: FrameCipher.tagBytes)
                bytes.withUnsafeMutableBytes { f in tag.withUnsafeMutableBytes { sender.seal(f, tag: $0) } }
                return (bytes, tag)
            }
        }
        /// Each sealed frame opened in turn: its plaintext, or nil when it fails.
        func open(_ sealed: [(ciphertext: [UInt8], tag: [UInt8])], key: Bytes32) -> [[UInt8]?] {
            var receiver = FrameCipher(key: key)
            return sealed.map { frame in
                var bytes = frame.ciphertext
                let ok = bytes.withUnsafeMutableBytes { f in frame.tag.withUnsafeBytes { receiver.open(f, tag: $0) } }
                return ok ? bytes : nil
            }
        }
        let frames: [[UInt8]] = [[1, 2, 3], [], [1, 2, 3], Array(repeating: 7, count: 5000)]
        let sent = seal(frames, key: keys.send)
        #expect(open(sent, key: keys.send) == frames.map { Optional($0) })
        #expect(sent[0].ciphertext != frames[0] && sent[3].ciphertext != frames[3], "a frame travels encrypted")
        #expect(sent[0].ciphertext != sent[2].ciphertext && sent[0].tag != sent[2].tag,
                "the same bytes at another position encrypt otherwise")
        var altered = sent
        altered[3].ciphertext[4999] ^= 1
        #expect(open(altered, key: keys.send).map { $0 != nil } == [true, true, true, false])
        #expect(open([sent[0], sent[0]], key: keys.send).map { $0 != nil } == [true, false], "a replay fails")
        #expect(open([sent[2], sent[0]], key: keys.send).map { $0 != nil } == [false, false], "a reordering fails")
        #expect(open(sent, key: keys.receive).allSatisfy { $0 == nil }, "a reflection fails")
        #expect(open([(sent[0].ciphertext, Array(sent[0].tag.prefix(8)))], key: keys.send) == [nil], "a short tag fails")
    }
}
