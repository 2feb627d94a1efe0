import BulwarkCore

/// Deterministic keys for tests: seed i gives the same key in every run.
public enum TestKeys {
    public static func key(_ i: Int) -> PrivateKey {
        var seed = [UInt8](repeating: 0, count: 32)
        seed[0] = UInt8(i & 0xff)
        seed[1] = UInt8(i >> 8)
        seed[31] = 0x42
        return PrivateKey(seed: seed)!
    }

    /// A configuration of `n` validators with keys 0..<n, in cluster `cluster`.
    public static func config(n: Int = 4, cluster: ClusterID = ClusterID(raw: Bytes32(Array(repeating: 7, count: 32))!)) -> ClusterConfig {
        try! ClusterConfig.layout(keys: (0..<n).map { key($0).publicKey }, host: "127.0.0.1", basePort: 9000, clusterID: cluster)
    }
}
