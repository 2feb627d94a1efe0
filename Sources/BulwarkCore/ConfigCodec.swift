/// The canonical encoding of a cluster configuration (SPEC.md §13.1): what admins sign, what
/// an epoch's hash names and what the replicated state holds.

extension Address: CanonicalCodable {
    public func encode(to w: inout CanonicalWriter) {
        w.write(host)
        w.write(port)
    }

    public init(from r: inout CanonicalReader) throws(CodecError) {
        let host = try r.readString("address host", max: ClusterConfig.hostBytesMax)
        let port = try r.readUInt16("address port")
        // The same rules as `host:port` text: a decoded address always prints and parses back.
        guard let parsed = Address(parsing: Address(host: host, port: port).description), parsed.host == host else {
            throw .invalidValue(field: "address", reason: "not a usable host and port")
        }
        self = parsed
    }
}

extension Validator: CanonicalCodable {
    public func encode(to w: inout CanonicalWriter) {
        w.write(id)
        w.write(publicKey)
        w.write(replicaAddress)
        w.write(clientAddress)
        w.write(httpAddress)
    }

    public init(from r: inout CanonicalReader) throws(CodecError) {
        self.init(id: try r.readUInt16("validator id"), publicKey: try r.readPublicKey("validator key"),
                  replicaAddress: try r.read(Address.self), clientAddress: try r.read(Address.self),
                  httpAddress: try r.read(Address.self))
    }
}

extension ProtocolParameters: CanonicalCodable {
    /// Every setting as a UInt64, in the order of `ranges`.
    public func encode(to w: inout CanonicalWriter) {
        for (_, _, value) in Self.ranges { w.write(UInt64(clamping: value(self))) }
    }

    public init(from r: inout CanonicalReader) throws(CodecError) {
        var values: [UInt64] = []
        for (name, range, _) in Self.ranges {
            let value = try r.readUInt64(name)
            // Checked before any narrowing: every range lies inside Int and UInt64.
            guard range.contains(Int128(value)) else {
                throw .invalidValue(field: name, reason: "\(value) is outside \(range.lowerBound)...\(range.upperBound)")
            }
            values.append(value)
        }
        var p = ProtocolParameters()
        p.batchRequestsMax = Int(values[0])
        p.batchBytesMax = Int(values[1])
        p.batchDelayMs = values[2]
        p.blocksInFlightMax = values[3]
        p.watermarkWindow = values[4]
        p.checkpointInterval = values[5]
        p.viewChangeTimeoutMs = values[6]
        p.turnaroundSlackMs = values[7]
        p.timestampSkewMsMax = values[8]
        p.keyBytesMax = Int(values[9])
        p.valueBytesMax = Int(values[10])
        p.requestBytesMax = Int(values[11])
        p.txnOperationsMax = Int(values[12])
        p.rangeResultsMax = Int(values[13])
        p.frameBytesMax = Int(values[14])
        p.stateTransferTimeoutMs = values[15]
        self = p
    }
}

extension ClusterConfig: CanonicalCodable {
    /// Version 1: an open cluster, as every configuration was before policies. Version 2 adds
    /// the policy byte, which must be `closed`: one configuration, one encoding, and an open
    /// configuration's encoding (and hash) did not change when policies came.
    static let openVersion: UInt8 = 1
    static let policyVersion: UInt8 = 2

    public func encode(to w: inout CanonicalWriter) {
        w.write(policy == .open ? Self.openVersion : Self.policyVersion)
        w.write(clusterID)
        w.write(validators)
        w.write(parameters)
        w.write(UInt32(admins.count))
        for admin in admins { w.write(admin) }
        w.write(UInt16(adminThreshold))
        if policy != .open { w.write(policy.rawValue) }
    }

    /// Decodes and validates: bytes that decode are a configuration `init` accepts.
    public init(from r: inout CanonicalReader) throws(CodecError) {
        let version = try r.readUInt8("cluster configuration version")
        guard version == Self.openVersion || version == Self.policyVersion else {
            throw .unsupportedVersion(type: "cluster configuration", version: version)
        }
        let cluster = try r.readClusterID("cluster id")
        let validators = try r.readArray(Validator.self, "validators", max: CodecLimits.votesMax)
        let parameters = try r.read(ProtocolParameters.self)
        let adminCount = Int(try r.readUInt32("admins"))
        guard adminCount <= Self.adminsMax else {
            throw .tooLarge(field: "admins count", length: adminCount, max: Self.adminsMax)
        }
        var admins: [PublicKey] = []
        for _ in 0..<adminCount { admins.append(try r.readPublicKey("admin key")) }
        let threshold = Int(try r.readUInt16("admin threshold"))
        var policy = ClientPolicy.open
        if version == Self.policyVersion {
            let code = try r.readUInt8("client policy")
            guard code == ClientPolicy.closed.rawValue else {
                throw .invalidValue(field: "client policy", reason: "version 2 carries a closed policy; an open one is version 1")
            }
            policy = .closed
        }
        // Validators must arrive already sorted: one configuration, one encoding.
        for (a, b) in zip(validators, validators.dropFirst()) where a.id >= b.id {
            throw .invalidValue(field: "validators", reason: "ids not strictly increasing")
        }
        do {
            try self.init(clusterID: cluster, validators: validators, parameters: parameters,
                          admins: admins, adminThreshold: threshold, policy: policy)
        } catch {
            throw .invalidValue(field: "cluster configuration", reason: error.description)
        }
    }
}
