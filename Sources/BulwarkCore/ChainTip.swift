/// One block of the ledger with the proof of its agreement.
public struct LedgerEntry: Hashable, Sendable {
    public var block: Block
    public var certificate: CommitCertificate

    public init(block: Block, certificate: CommitCertificate) {
        self.block = block
        self.certificate = certificate
    }
}

/// Why a block cannot follow the ledger it was offered for.
public enum LedgerError: Error, Equatable, Sendable, CustomStringConvertible {
    case wrongHeight(expected: Height, found: Height)
    case wrongCluster(Height)
    case brokenLink(Height)
    case wrongHistoryRoot(Height)
    case timestampDecreased(Height)
    case wrongTxRoot(Height)
    case certificateMismatch(Height)
    case invalidCertificate(Height, CertificateError)
    case invalidRequestSignature(Height, index: Int)

    public var height: Height {
        switch self {
        case let .wrongHeight(_, found): return found
        case let .wrongCluster(h), let .brokenLink(h), let .wrongHistoryRoot(h), let .timestampDecreased(h),
             let .wrongTxRoot(h), let .certificateMismatch(h), let .invalidCertificate(h, _),
             let .invalidRequestSignature(h, _):
            return h
        }
    }

    public var description: String {
        switch self {
        case let .wrongHeight(expected, found): return "expected height \(expected), found \(found)"
        case let .wrongCluster(h): return "block \(h) belongs to another cluster"
        case let .brokenLink(h): return "block \(h): prevBlockHash does not match the hash of block \(h - 1)"
        case let .wrongHistoryRoot(h): return "block \(h): historyRoot does not match the blocks before it"
        case let .timestampDecreased(h): return "block \(h): timestamp is earlier than block \(h - 1)'s"
        case let .wrongTxRoot(h): return "block \(h): txRoot does not match its requests"
        case let .certificateMismatch(h): return "block \(h): commit certificate is for another height or block"
        case let .invalidCertificate(h, error): return "block \(h): commit certificate invalid: \(error)"
        case let .invalidRequestSignature(h, index): return "block \(h): request \(index) has an invalid client signature"
        }
    }
}

/// The position of the ledger after some block: what the next block must link to.
public struct ChainTip: Hashable, Sendable {
    public var height: Height
    public var blockHash: Digest
    public var timestampMs: UInt64
    /// Accumulator over the hashes of blocks 1...height; its root is the next block's
    /// `historyRoot`.
    public var history: MerkleAccumulator

    public init(height: Height, blockHash: Digest, timestampMs: UInt64, history: MerkleAccumulator) {
        self.height = height
        self.blockHash = blockHash
        self.timestampMs = timestampMs
        self.history = history
    }

    public static let genesis = ChainTip(height: 0, blockHash: .zero, timestampMs: 0, history: MerkleAccumulator())

    /// The tip after appending `header` (which must link to this tip).
    public func appending(_ header: BlockHeader, hash: Digest) -> ChainTip {
        var next = history
        next.append(leafHash: MerkleTree.leafHash(hash))
        return ChainTip(height: header.height, blockHash: hash, timestampMs: header.timestampMs, history: next)
    }

    /// True when `header` is a valid successor of this tip (height, hash link, history root,
    /// monotonic timestamp).
    public func isLinked(to header: BlockHeader) -> Bool {
        header.height == height + 1 && header.prevBlockHash == blockHash && header.historyRoot == history.root
            && header.timestampMs >= timestampMs
    }

    /// Checks that `entry` links to this ledger — height, cluster, hash link, history root,
    /// monotonic timestamp, a certificate naming exactly this block and (unless the caller
    /// already knows it, as a writer of committed blocks does) txRoot — without checking
    /// signatures, and returns the tip after it.
    public func checkLinkage(_ entry: LedgerEntry, cluster: ClusterID? = nil,
                             checkTxRoot: Bool = true) throws(LedgerError) -> ChainTip {
        let header = entry.block.header
        let h = header.height
        guard h == height + 1 else { throw .wrongHeight(expected: height + 1, found: h) }
        if let cluster { guard header.clusterID == cluster else { throw .wrongCluster(h) } }
        guard header.prevBlockHash == blockHash else { throw .brokenLink(h) }
        guard header.historyRoot == history.root else { throw .wrongHistoryRoot(h) }
        guard header.timestampMs >= timestampMs else { throw .timestampDecreased(h) }
        if checkTxRoot { guard entry.block.hasConsistentTxRoot() else { throw .wrongTxRoot(h) } }
        let hash = header.hash
        guard entry.certificate.height == h, entry.certificate.blockHash == hash else { throw .certificateMismatch(h) }
        return appending(header, hash: hash)
    }

    /// `checkLinkage`, plus the commit certificate's signatures (a quorum of this cluster's
    /// validators) and, with `checkRequests`, every client signature. Trusts nothing about
    /// where the entry came from.
    public func verifyNext(_ entry: LedgerEntry, config: ClusterConfig, verifier: SignatureVerifier? = nil,
                           checkRequests: Bool = true) throws(LedgerError) -> ChainTip {
        let next = try checkLinkage(entry, cluster: config.clusterID)
        let h = next.height
        do { try entry.certificate.verify(config: config, verifier: verifier) } catch {
            throw .invalidCertificate(h, error)
        }
        if checkRequests {
            for (index, request) in entry.block.requests.enumerated() {
                let bytes = request.signedBytes(cluster: config.clusterID)
                let valid = verifier?.isValid(request.signature, by: request.client, for: bytes)
                    ?? request.client.isValidSignature(request.signature, for: bytes)
                guard valid else { throw .invalidRequestSignature(h, index: index) }
            }
        }
        return next
    }
}

extension LedgerEntry: CanonicalCodable {
    public func encode(to w: inout CanonicalWriter) {
        w.write(block)
        w.write(certificate)
    }

    public init(from r: inout CanonicalReader) throws(CodecError) {
        self.init(block: try r.read(Block.self), certificate: try r.read(CommitCertificate.self))
    }
}

extension ChainTip: CanonicalCodable {
    public func encode(to w: inout CanonicalWriter) {
        w.write(height)
        w.write(blockHash)
        w.write(timestampMs)
        w.write(history)
    }

    public init(from r: inout CanonicalReader) throws(CodecError) {
        height = try r.readUInt64("tip height")
        blockHash = try r.readDigest("tip block hash")
        timestampMs = try r.readUInt64("tip timestamp")
        history = try r.read(MerkleAccumulator.self)
        guard history.size == height else {
            throw .invalidValue(field: "tip history", reason: "covers \(history.size) blocks, not \(height)")
        }
    }
}
