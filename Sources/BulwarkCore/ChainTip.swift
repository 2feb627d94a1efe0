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
    /// The proposer named in the header is not the primary of the header's view.
    case wrongProposer(Height, proposer: ReplicaID, primary: ReplicaID)
    /// The commit certificate's view is below the view the block was proposed in.
    case certificateViewBelowBlock(Height, certificate: View, block: View)
    /// The header names another epoch than the one in force at its height.
    case wrongEpoch(Height, expected: UInt64, found: UInt64)

    public var height: Height {
        switch self {
        case let .wrongHeight(_, found): return found
        case let .wrongCluster(h), let .brokenLink(h), let .wrongHistoryRoot(h), let .timestampDecreased(h),
             let .wrongTxRoot(h), let .certificateMismatch(h), let .invalidCertificate(h, _),
             let .invalidRequestSignature(h, _), let .wrongProposer(h, _, _), let .certificateViewBelowBlock(h, _, _),
             let .wrongEpoch(h, _, _):
            return h
        }
    }

    /// The record the problem is in (SPEC.md §11).
    public var record: String {
        switch self {
        case .certificateMismatch, .invalidCertificate, .certificateViewBelowBlock: return "commit certificate"
        case let .invalidRequestSignature(_, index): return "request \(index)"
        default: return "block"
        }
    }

    /// What is wrong, without the height (which `height` gives).
    public var reason: String {
        switch self {
        case let .wrongHeight(expected, found): return "expected height \(expected), found \(found)"
        case .wrongCluster: return "the block belongs to another cluster"
        case let .brokenLink(h): return "prevBlockHash does not match the hash of block \(h - 1)"
        case .wrongHistoryRoot: return "historyRoot does not match the blocks before it"
        case let .timestampDecreased(h): return "timestamp is earlier than block \(h - 1)'s"
        case .wrongTxRoot: return "txRoot does not match the requests"
        case .certificateMismatch: return "names another height or block"
        case let .invalidCertificate(_, error): return "\(error)"
        case .invalidRequestSignature: return "the client signature is invalid"
        case let .wrongProposer(_, proposer, primary):
            return "proposer \(proposer) is not the primary of the block's view (replica \(primary))"
        case let .certificateViewBelowBlock(_, certificate, block):
            return "view \(certificate) is below the view \(block) the block was proposed in"
        case let .wrongEpoch(_, expected, found):
            return "the header names epoch \(found), but epoch \(expected) is in force at its height"
        }
    }

    public var description: String {
        switch self {
        case .wrongHeight: return reason
        default: return "block \(height), \(record): \(reason)"
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

    /// `checkLinkage`, plus the epoch, the view rules, the commit certificate's signatures (a
    /// quorum of the validators of `config`, the configuration of epoch `epoch` in force at
    /// the block's height) and, with `checkRequests`, every client signature. Trusts nothing
    /// about where the entry came from.
    public func verifyNext(_ entry: LedgerEntry, config: ClusterConfig, epoch: UInt64, verifier: SignatureVerifier? = nil,
                           checkRequests: Bool = true) throws(LedgerError) -> ChainTip {
        let next = try checkLinkage(entry, cluster: config.clusterID)
        try Self.checkViews(entry, config: config, epoch: epoch)
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

extension ChainTip {
    /// The epoch and view rules of SPEC.md §7.3 and §10.2: a block names the epoch in force at
    /// its height, its proposer is the primary of its view in that epoch's configuration, and
    /// its commit certificate's view is at least that view (a block prepared in an earlier view
    /// is carried over unchanged by a view change; it never commits earlier).
    public static func checkViews(_ entry: LedgerEntry, config: ClusterConfig, epoch: UInt64) throws(LedgerError) {
        let header = entry.block.header
        guard header.epoch == epoch else { throw .wrongEpoch(header.height, expected: epoch, found: header.epoch) }
        let primary = config.primary(of: header.view)
        guard header.proposer == primary else {
            throw .wrongProposer(header.height, proposer: header.proposer, primary: primary)
        }
        guard entry.certificate.view >= header.view else {
            throw .certificateViewBelowBlock(header.height, certificate: entry.certificate.view, block: header.view)
        }
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
