import BulwarkCore
import BulwarkTestSupport
import BulwarkStorage
import Testing

@Suite struct CryptoTests {
    let clusterA = ClusterID(raw: Bytes32(Array(repeating: 1, count: 32))!)
    let clusterB = ClusterID(raw: Bytes32(Array(repeating: 2, count: 32))!)

    @Test func sha256KnownAnswers() {
        #expect(Digest.sha256(Array("abc".utf8)).hex == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(Digest.sha256([]).hex == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        var hasher = SHA256Hasher()
        hasher.update(Array("a".utf8))
        hasher.update(Array("bc".utf8))
        #expect(hasher.finalize() == Digest.sha256(Array("abc".utf8)))
    }

    /// RFC 8032 §7.1 test 1: key pair and signature from a known seed.
    @Test func rfc8032TestVector() throws {
        let seed = try #require(Hex.decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"))
        let key = try #require(PrivateKey(seed: seed))
        #expect(key.publicKey.hex == "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
        #expect(key.sign([UInt8]()).description
            == "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b")
    }

    @Test func signaturesVerifyOnlyInTheirOwnDomainAndCluster() {
        let key = TestKeys.key(1)
        let body: (inout CanonicalWriter) -> Void = { w in w.write(UInt64(42)) }
        let signature = key.sign(.prepare, cluster: clusterA, body: body)
        #expect(key.publicKey.isValidSignature(signature, domain: .prepare, cluster: clusterA, body: body))
        #expect(!key.publicKey.isValidSignature(signature, domain: .commit, cluster: clusterA, body: body))
        #expect(!key.publicKey.isValidSignature(signature, domain: .prepare, cluster: clusterB, body: body))
        #expect(!key.publicKey.isValidSignature(signature, domain: .prepare, cluster: clusterA) { w in w.write(UInt64(43)) })
        #expect(!TestKeys.key(2).publicKey.isValidSignature(signature, domain: .prepare, cluster: clusterA, body: body))
    }

    @Test func requestSignaturesBindTheirContent() {
        let client = TestKeys.key(50)
        let request = Request.signed(by: client, cluster: clusterA, requestID: 7, operation: .put(key: [1], value: [2]))
        #expect(request.hasValidSignature(cluster: clusterA))
        #expect(!request.hasValidSignature(cluster: clusterB))
        var tampered = request
        tampered.requestID = 8
        #expect(!tampered.hasValidSignature(cluster: clusterA))
        tampered = request
        tampered.operation = .put(key: [1], value: [3])
        #expect(!tampered.hasValidSignature(cluster: clusterA))
        #expect(request.digest(cluster: clusterA) != request.digest(cluster: clusterB))
    }

    @Test func taggedHashesSeparateDomainsAndClusters() {
        let bytes: [UInt8] = [1, 2, 3]
        let a = Digest.tagged(.block, cluster: clusterA, bytes)
        #expect(a == Digest.tagged(.block, cluster: clusterA, bytes))
        #expect(a != Digest.tagged(.requestDigest, cluster: clusterA, bytes))
        #expect(a != Digest.tagged(.block, cluster: clusterB, bytes))
        #expect(a != Digest.sha256(bytes))
    }

    @Test func privateKeysNeverPrintTheirSecret() {
        let key = TestKeys.key(3)
        let secretHex = Hex.encode(key.seedForKeyFile())
        for text in [key.description, key.debugDescription, String(reflecting: key), "\(key)"] {
            #expect(!text.contains(secretHex))
            #expect(!text.contains(String(secretHex.prefix(16))))
        }
    }

    @Test func generatedKeysDiffer() {
        #expect(PrivateKey.generate().publicKey != PrivateKey.generate().publicKey)
        #expect(PrivateKey(seed: [1, 2, 3]) == nil)
    }

    @Test func hexRoundTripsAndRejectsJunk() {
        #expect(Hex.encode([0, 0xab, 0xff]) == "00abff")
        #expect(Hex.decode("00ABff") == [0, 0xab, 0xff])
        #expect(Hex.decode("abc") == nil)
        #expect(Hex.decode("zz") == nil)
    }
}
