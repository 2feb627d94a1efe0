import BulwarkCore
import Testing

@Suite struct HandshakeTests {
    let config = TestKeys.config(n: 4)
    func nonce(_ n: UInt8) -> Digest { Digest(Array(repeating: n, count: 32))! }

    func run(role: PeerRole, connectorKey: PrivateKey, acceptor: ReplicaID = 2, expected: ReplicaID = 2,
             acceptorKey: PrivateKey? = nil) throws(HandshakeError) -> PeerRole {
        var server = HandshakeAcceptor(config: config, id: acceptor, key: acceptorKey ?? TestKeys.key(Int(acceptor)), nonce: nonce(1))
        let client = HandshakeConnector(config: config, role: role, key: connectorKey, nonce: nonce(2), expected: expected)
        let challenge = try server.receive(hello: client.hello)
        let response = try client.receive(challenge: challenge)
        return try server.receive(response: response)
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
        var server = HandshakeAcceptor(config: config, id: 2, key: TestKeys.key(2), nonce: nonce(1))
        let client = HandshakeConnector(config: other, role: .replica(1), key: TestKeys.key(1), nonce: nonce(2), expected: 2)
        #expect(throws: HandshakeError.wrongCluster) { _ = try server.receive(hello: client.hello) }
    }

    /// A response recorded in one session is worthless in another (the nonces differ).
    @Test func responsesDoNotReplayAcrossSessions() throws {
        var first = HandshakeAcceptor(config: config, id: 2, key: TestKeys.key(2), nonce: nonce(1))
        let client = HandshakeConnector(config: config, role: .replica(1), key: TestKeys.key(1), nonce: nonce(2), expected: 2)
        let response = try client.receive(challenge: try first.receive(hello: client.hello))
        var second = HandshakeAcceptor(config: config, id: 2, key: TestKeys.key(2), nonce: nonce(5))
        _ = try second.receive(hello: client.hello)
        #expect(throws: HandshakeError.badSignature) { _ = try second.receive(response: response) }
        #expect(throws: HandshakeError.unexpectedMessage) { _ = try second.receive(hello: client.hello) }
    }

    @Test func messagesRoundTrip() throws {
        let messages: [HandshakeMessage] = [
            .hello(cluster: config.clusterID, role: .client(TestKeys.key(1).publicKey), nonce: nonce(3)),
            .challenge(replica: 3, nonce: nonce(4), signature: Signature(Array(repeating: 5, count: 64))!),
            .response(signature: Signature(Array(repeating: 6, count: 64))!),
        ]
        for m in messages { #expect(try HandshakeMessage(decoding: m.encoded()) == m) }
    }
}
