/// A replica's index in the cluster configuration; the primary of view v is `v mod n`.
public typealias ReplicaID = UInt16
/// A PBFT view number.
public typealias View = UInt64
/// A block height, equal to the PBFT sequence number. The first block has height 1.
public typealias Height = UInt64

/// The header of a block (ARCHITECTURE.md §2). Its tagged hash is the block hash that commit
/// certificates sign and the next block's `prevBlockHash` names.
public struct BlockHeader: Hashable, Sendable {
    public var clusterID: ClusterID
    /// The configuration epoch the block belongs to (SPEC.md §18): its commit certificate is
    /// checked against that epoch's validators.
    public var epoch: UInt64
    public var height: Height
    /// The view in which the primary proposed this block.
    public var view: View
    /// Milliseconds since the Unix epoch, as proposed by the primary; strictly increasing along
    /// the chain and checked by backups against their own clock within a skew bound.
    public var timestampMs: UInt64
    public var proposer: ReplicaID
    /// Hash of the block at `height - 1`; `Digest.zero` for height 1.
    public var prevBlockHash: Digest
    /// RFC 6962 root over the digests of this block's requests, in order.
    public var txRoot: Digest
    /// RFC 6962 root over the hashes of blocks `1..<height`: a signed digest of the whole
    /// ledger before this block.
    public var historyRoot: Digest

    /// Ledger format 3: headers carry the epoch, and the state holds the configuration
    /// (SPEC.md §1). A ledger of an earlier format does not decode.
    static let version: UInt8 = 3

    public init(clusterID: ClusterID, epoch: UInt64 = 0, height: Height, view: View, timestampMs: UInt64, proposer: ReplicaID,
                prevBlockHash: Digest, txRoot: Digest, historyRoot: Digest) {
        self.clusterID = clusterID
        self.epoch = epoch
        self.height = height
        self.view = view
        self.timestampMs = timestampMs
        self.proposer = proposer
        self.prevBlockHash = prevBlockHash
        self.txRoot = txRoot
        self.historyRoot = historyRoot
    }

    /// SHA-256 over the tagged header encoding.
    public var hash: Digest { Digest.tagged(.block, cluster: clusterID, encoded()) }
}

extension BlockHeader: CanonicalCodable {
    public func encode(to w: inout CanonicalWriter) {
        w.write(Self.version)
        w.write(clusterID)
        w.write(epoch)
        w.write(height)
        w.write(view)
        w.write(timestampMs)
        w.write(proposer)
        w.write(prevBlockHash)
        w.write(txRoot)
        w.write(historyRoot)
    }

    public init(from r: inout CanonicalReader) throws(CodecError) {
        try r.readVersion("block header", supported: Self.version)
        clusterID = try r.readClusterID("cluster id")
        epoch = try r.readUInt64("epoch")
        height = try r.readUInt64("height")
        view = try r.readUInt64("view")
        timestampMs = try r.readUInt64("timestamp")
        proposer = try r.readUInt16("proposer")
        prevBlockHash = try r.readDigest("prevBlockHash")
        txRoot = try r.readDigest("txRoot")
        historyRoot = try r.readDigest("historyRoot")
    }
}

/// An agreed batch: a header and the requests it orders. A block with no requests is a null
/// block (PBFT fills gaps with them after a view change).
public struct Block: Hashable, Sendable {
    public var header: BlockHeader
    public var requests: [Request]

    static let version: UInt8 = 1

    public init(header: BlockHeader, requests: [Request]) {
        self.header = header
        self.requests = requests
    }

    public var hash: Digest { header.hash }
    public var height: Height { header.height }

    /// The RFC 6962 root over the given requests' digests.
    public static func txRoot(of requests: [Request], cluster: ClusterID) -> Digest {
        MerkleTree.root(leafHashes: requests.map { MerkleTree.leafHash($0.digest(cluster: cluster)) })
    }

    /// True when the header's `txRoot` matches the requests carried.
    public func hasConsistentTxRoot() -> Bool {
        Block.txRoot(of: requests, cluster: header.clusterID) == header.txRoot
    }
}

extension Block: CanonicalCodable {
    public func encode(to w: inout CanonicalWriter) {
        w.write(Self.version)
        w.write(header)
        w.write(requests)
    }

    public init(from r: inout CanonicalReader) throws(CodecError) {
        try r.readVersion("block", supported: Self.version)
        header = try r.read(BlockHeader.self)
        requests = try r.readArray(Request.self, "block requests", max: CodecLimits.requestsPerBlockMax)
    }
}
