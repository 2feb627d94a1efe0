import BulwarkCore
import BulwarkStateMachine
import BulwarkTestSupport
import BulwarkStorage
import Foundation
import Testing

@Suite struct ClusterConfigTests {
    func temporaryDirectory() -> String {
        let path = NSTemporaryDirectory() + "bulwark-test-\(UUID().uuidString)"
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    @Test(arguments: [(4, 1, 3), (5, 1, 4), (6, 1, 4), (7, 2, 5), (10, 3, 7), (13, 4, 9)])
    func quorumMath(n: Int, f: Int, quorum: Int) {
        let config = TestKeys.config(n: n)
        #expect(config.f == f)
        #expect(config.quorum == quorum)
        #expect(config.replyQuorum == f + 1)
        // Any two quorums intersect in at least f+1 replicas, so in at least one honest one.
        #expect(2 * config.quorum - n >= f + 1)
        #expect(config.primary(of: 0) == 0)
        #expect(config.primary(of: UInt64(n) + 1) == 1)
    }

    @Test func invalidConfigurationsSayExactlyWhatIsWrong() {
        let good = TestKeys.config(n: 4)
        #expect(throws: ConfigError.tooFewReplicas(3)) {
            _ = try ClusterConfig(clusterID: good.clusterID, validators: Array(good.validators.prefix(3)))
        }
        var validators = good.validators
        validators[2].publicKey = validators[0].publicKey
        #expect(throws: ConfigError.duplicateKey(first: 0, second: 2)) {
            _ = try ClusterConfig(clusterID: good.clusterID, validators: validators)
        }
        validators = good.validators
        validators[3].id = 1
        #expect(throws: ConfigError.duplicateID(1)) {
            _ = try ClusterConfig(clusterID: good.clusterID, validators: validators)
        }
        // Ids need not be contiguous: a removed replica leaves a gap, and primaries go by position.
        validators = good.validators
        validators[1].id = 9
        let gapped = try! ClusterConfig(clusterID: good.clusterID, validators: validators)
        #expect(gapped.ids == [0, 2, 3, 9])
        #expect((0..<5).map { gapped.primary(of: $0) } == [0, 2, 3, 9, 0])
        #expect(gapped.validator(9)?.publicKey == good.validators[1].publicKey && gapped.validator(1) == nil)
        let admin = TestKeys.config(n: 5).validators[4].publicKey
        #expect(throws: ConfigError.badAdmins("adminThreshold must be between 1 and the 1 admins, not 2")) {
            _ = try ClusterConfig(clusterID: good.clusterID, validators: good.validators, admins: [admin], adminThreshold: 2)
        }
        #expect(throws: ConfigError.badAdmins("an admin key is listed twice")) {
            _ = try ClusterConfig(clusterID: good.clusterID, validators: good.validators, admins: [admin, admin])
        }
        #expect(throws: ConfigError.badAdmins("adminThreshold must be 0 when there are no admins")) {
            _ = try ClusterConfig(clusterID: good.clusterID, validators: good.validators, admins: [], adminThreshold: 1)
        }
        validators = good.validators
        validators[1].clientAddress = validators[0].replicaAddress
        #expect(throws: ConfigError.duplicateAddress(validators[0].replicaAddress, first: 0, second: 1)) {
            _ = try ClusterConfig(clusterID: good.clusterID, validators: validators)
        }
        var parameters = ProtocolParameters()
        parameters.watermarkWindow = 10
        #expect(throws: ConfigError.self) {
            _ = try ClusterConfig(clusterID: good.clusterID, validators: good.validators, parameters: parameters)
        }
        #expect(ConfigError.tooFewReplicas(3).description.contains("at least 4"))
        // A block of batchBytesMax with every validator's vote must fit one frame (issue 29
        // item 5: a state-transfer answer always carries at least one block).
        parameters = ProtocolParameters()
        parameters.frameBytesMax = 64 << 10
        parameters.batchBytesMax = 32 << 10
        parameters.requestBytesMax = 32 << 10
        // (A window the largest NEW-VIEW fits a 64 KiB frame with: SPEC.md §16.)
        parameters.watermarkWindow = 32
        #expect((try? ClusterConfig(clusterID: good.clusterID, validators: good.validators, parameters: parameters)) != nil)
        let many = (0..<500).map { i in
            Validator(id: ReplicaID(i), publicKey: TestKeys.key(i).publicKey,
                      replicaAddress: Address(host: "10.0.\(i / 200).\(i % 200)", port: 1),
                      clientAddress: Address(host: "10.0.\(i / 200).\(i % 200)", port: 2),
                      httpAddress: Address(host: "10.0.\(i / 200).\(i % 200)", port: 3))
        }
        #expect(throws: ConfigError.self) {
            _ = try ClusterConfig(clusterID: good.clusterID, validators: many, parameters: parameters)
        }
    }

    @Test func addressesParseStrictly() {
        #expect(Address(parsing: "127.0.0.1:7000") == Address(host: "127.0.0.1", port: 7000))
        #expect(Address(parsing: "[::1]:80") == Address(host: "::1", port: 80))
        #expect(Address(parsing: "node-1.example:65535")?.port == 65535)
        for bad in ["127.0.0.1", "127.0.0.1:0", "127.0.0.1:65536", ":80", "a b:1", "::1:80", "host:-1", "host:8x"] {
            #expect(Address(parsing: bad) == nil, "\(bad)")
        }
    }

    @Test func malformedJSONNamesTheProblem() throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/cluster.json"
        let config = TestKeys.config(n: 4)
        var json = String(decoding: config.jsonData(), as: UTF8.self)
        json = json.replacingOccurrences(of: "127.0.0.1:9000", with: "127.0.0.1:99999")
        try json.write(toFile: path, atomically: true, encoding: .utf8)
        #expect {
            _ = try ClusterConfig.load(from: path)
        } throws: { error in
            "\(error)".contains("127.0.0.1:99999") && "\(error)".contains("not a host:port")
        }
        #expect(throws: ConfigError.self) { _ = try ClusterConfig.load(from: dir + "/missing.json") }
    }

    /// `cluster init`, then loading what it wrote, gives n validators whose keys sign and verify.
    @Test(arguments: [4, 7])
    func clusterInitThenLoad(nodes: Int) throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let written = try ClusterInit.run(nodes: nodes, host: "127.0.0.1", basePort: 20000, directory: dir, force: false)
        let config = try ClusterConfig.load(from: dir + "/cluster.json")
        #expect(config == written)
        #expect(config.n == nodes)
        for validator in config.validators {
            let keyPath = dir + "/" + ClusterInit.keyFileName(replica: validator.id)
            let mode = try FileManager.default.attributesOfItem(atPath: keyPath)[.posixPermissions] as? Int
            #expect(mode == 0o600)
            let key = try KeyFile.load(from: keyPath)
            #expect(key.publicKey == validator.publicKey)
            let signature = key.sign(.commit, cluster: config.clusterID) { $0.write(UInt64(1)) }
            #expect(validator.publicKey.isValidSignature(signature, domain: .commit, cluster: config.clusterID) {
                $0.write(UInt64(1))
            })
        }
        #expect(config.admins.count == 1 && config.adminThreshold == 1)
        #expect(try KeyFile.load(from: dir + "/admin-0.key").publicKey == config.admins[0])
        #expect(throws: ClusterInit.Failure.exists(dir + "/cluster.json")) {
            try ClusterInit.run(nodes: nodes, host: "127.0.0.1", basePort: 20000, directory: dir, force: false)
        }
        let replaced = try ClusterInit.run(nodes: nodes, host: "127.0.0.1", basePort: 20000, directory: dir, force: true)
        #expect(replaced.clusterID != written.clusterID)
    }

    /// `--admins 3 --admin-threshold 2` writes three admin key files and names them in cluster.json.
    @Test func clusterInitWritesAdminKeys() throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let written = try ClusterInit.run(nodes: 4, host: "127.0.0.1", basePort: 20000, directory: dir, force: false,
                                          admins: 3, adminThreshold: 2)
        let config = try ClusterConfig.load(from: dir + "/cluster.json")
        #expect(config == written && config.adminThreshold == 2)
        #expect(try (0..<3).map { try KeyFile.load(from: dir + "/admin-\($0).key").publicKey } == config.admins)
        #expect(throws: ClusterInit.Failure.badAdmins(admins: 2, threshold: 3)) {
            try ClusterInit.run(nodes: 4, host: "127.0.0.1", basePort: 20000, directory: dir, force: true, admins: 2, adminThreshold: 3)
        }
    }

    /// The canonical encoding (what admins sign) round-trips, and only valid, sorted
    /// configurations decode.
    @Test func theCanonicalEncodingRoundTripsAndValidates() throws {
        let admin = TestKeys.key(9).publicKey
        let config = try ClusterConfig(clusterID: TestKeys.config(n: 4).clusterID, validators: TestKeys.config(n: 5).validators,
                                       admins: [admin], adminThreshold: 1)
        #expect(try ClusterConfig(decoding: config.encoded()) == config)
        #expect(config.hash != TestKeys.config(n: 4).hash)
        var bytes = config.encoded()
        // The threshold is the last two bytes: 2 with one admin does not decode.
        bytes[bytes.count - 2] = 2
        #expect(throws: CodecError.self) { _ = try ClusterConfig(decoding: bytes) }
        // Swap two validators' ids' order: unsorted validators do not decode.
        var w = CanonicalWriter()
        w.write(UInt8(1)); w.write(config.clusterID)
        w.write([config.validators[1], config.validators[0]] + config.validators.dropFirst(2))
        w.write(config.parameters); w.write(UInt32(0)); w.write(UInt16(0))
        #expect(throws: CodecError.self) { _ = try ClusterConfig(decoding: w.bytes) }
    }

    @Test func clusterInitRejectsBadInput() {
        #expect(throws: ClusterInit.Failure.tooFewNodes(3)) {
            try ClusterInit.run(nodes: 3, host: "127.0.0.1", basePort: 20000, directory: "/nonexistent", force: false)
        }
        #expect(throws: ClusterInit.Failure.portsOutOfRange(basePort: 65530, nodes: 4)) {
            try ClusterInit.run(nodes: 4, host: "127.0.0.1", basePort: 65530, directory: "/nonexistent", force: false)
        }
        #expect(throws: ClusterInit.Failure.badHost("bad host")) {
            try ClusterInit.run(nodes: 4, host: "bad host", basePort: 20000, directory: "/nonexistent", force: false)
        }
    }

    @Test func keyFilesReadableByOthersAreRefused() throws {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/k.key"
        try KeyFile.write(TestKeys.key(1), to: path)
        #expect(try KeyFile.load(from: path).publicKey == TestKeys.key(1).publicKey)
        #expect(throws: KeyFileError.exists(path)) { try KeyFile.write(TestKeys.key(2), to: path) }
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: path)
        #expect(throws: KeyFileError.tooOpen(path: path, mode: 0o644)) { _ = try KeyFile.load(from: path) }
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path)
        let text = try String(contentsOfFile: path, encoding: .utf8)
        try text.replacingOccurrences(of: TestKeys.key(1).publicKey.hex, with: TestKeys.key(2).publicKey.hex)
            .write(toFile: path, atomically: false, encoding: .utf8)
        #expect(throws: KeyFileError.publicKeyMismatch(path)) { _ = try KeyFile.load(from: path) }
        #expect(throws: KeyFileError.notFound(dir + "/none.key")) { _ = try KeyFile.load(from: dir + "/none.key") }
    }
}

/// Every protocol parameter has bounds; a value outside them stops start-up with one sentence
/// naming it (values that passed before crashed every replica: the watermark window and the
/// view-change timeout at 2^64−1 overflowed on the first request).
@Suite struct ParameterBoundsTests {
    func problem(_ change: (inout ProtocolParameters) -> Void) -> String? {
        var parameters = ProtocolParameters()
        change(&parameters)
        do {
            _ = try ClusterConfig(clusterID: TestKeys.config(n: 4).clusterID, validators: TestKeys.config(n: 4).validators,
                                  parameters: parameters)
            return nil
        } catch {
            return error.description
        }
    }

    @Test func theDefaultsAreInRange() {
        #expect(problem { _ in } == nil)
    }

    @Test func extremeValuesAreRefusedByName() {
        let cases: [(String, (inout ProtocolParameters) -> Void)] = [
            ("watermarkWindow", { $0.watermarkWindow = .max }),
            ("viewChangeTimeoutMs", { $0.viewChangeTimeoutMs = .max }),
            ("checkpointInterval", { $0.checkpointInterval = .max }),
            ("timestampSkewMsMax", { $0.timestampSkewMsMax = .max }),
            ("batchDelayMs", { $0.batchDelayMs = .max }),
            ("turnaroundSlackMs", { $0.turnaroundSlackMs = .max }),
            ("blocksInFlightMax", { $0.blocksInFlightMax = .max }),
            ("batchRequestsMax", { $0.batchRequestsMax = -1 }),
            ("frameBytesMax", { $0.frameBytesMax = .max }),
            ("rangeResultsMax", { $0.rangeResultsMax = .max }),
            ("viewChangeTimeoutMs", { $0.viewChangeTimeoutMs = 0 }),
        ]
        for (name, change) in cases {
            let sentence = problem(change)
            #expect(sentence?.contains("parameter \(name) must be between") == true, "\(name): \(String(describing: sentence))")
        }
        #expect(problem { $0.batchRequestsMax = -1 }?.hasSuffix("not -1") == true)
    }

    @Test func everyBoundIsSafeForTheArithmeticTheReplicaDoes() {
        // The largest allowed values together: the request deadline (a clock plus the timeout
        // doubled ten times) and the high watermark (a height plus the window) stay far from
        // overflow.
        var parameters = ProtocolParameters()
        parameters.viewChangeTimeoutMs = 3_600_000
        parameters.watermarkWindow = ProtocolBounds.watermarkWindowMax
        parameters.checkpointInterval = ProtocolBounds.watermarkWindowMax / 2
        #expect(problem { $0 = parameters } == nil)
        let (_, deadlineOverflow) = UInt64(4_000_000_000_000).addingReportingOverflow(parameters.viewChangeTimeoutMs << 10)
        let (_, watermarkOverflow) = (ProtocolBounds.heightMax + ProtocolBounds.viewsAheadMax)
            .addingReportingOverflow(parameters.watermarkWindow)
        #expect(!deadlineOverflow && !watermarkOverflow)
    }
}

/// Issue 29 item 5, found by the simulator's max-size workload: a range result was cut at a
/// fixed 4 MiB, so under a smaller `frameBytesMax` a range over large values built a reply no
/// link would carry. The budget follows the frame, and the configuration check proves a reply
/// of `rangeResultsMax` entries fits.
@Suite struct ReplySizeTests {
    static func config(frameBytesMax: Int, rangeResultsMax: Int = 1000) throws -> ClusterConfig {
        var parameters = ProtocolParameters()
        parameters.frameBytesMax = frameBytesMax
        parameters.batchBytesMax = frameBytesMax / 2
        parameters.requestBytesMax = frameBytesMax / 2
        parameters.valueBytesMax = 120 << 10
        parameters.rangeResultsMax = rangeResultsMax
        parameters.watermarkWindow = 32
        parameters.checkpointInterval = 8
        return try ClusterConfig.layout(keys: (0..<4).map { TestKeys.key($0).publicKey }, host: "127.0.0.1",
                                        basePort: 9000, clusterID: ClusterID(raw: Bytes32(Array(repeating: 7, count: 32))!),
                                        parameters: parameters)
    }

    static func rangeReply(frameBytesMax: Int) throws -> [UInt8] {
        var state = KeyValueState(genesis: try config(frameBytesMax: frameBytesMax))
        let client = TestKeys.key(9)
        var requests = (1...3).map { i in
            Request.signed(by: client, cluster: state.cluster, requestID: UInt64(i),
                           operation: .put(key: [UInt8(i)], value: Array(repeating: UInt8(i), count: 120 << 10)))
        }
        requests.append(Request.signed(by: client, cluster: state.cluster, requestID: 4,
                                       operation: .range(start: [], end: [], limit: 10)))
        let header = BlockHeader(clusterID: state.cluster, height: 1, view: 0, timestampMs: 0, proposer: 0,
                                 prevBlockHash: .zero, txRoot: .zero, historyRoot: .zero)
        let outcomes = try state.execute(Block(header: header, requests: requests))
        guard case let .executed(result)? = outcomes.last else { Issue.record("range not executed"); return [] }
        return ClientFrame.reply(ClientReply(requestID: 4, height: 1, result: result.encoded())).encoded()
    }

    @Test func aRangeReplyFitsTheFrameOfItsConfiguration() throws {
        let small = 256 << 10
        #expect(try Self.rangeReply(frameBytesMax: small).count <= small)
        // A frame large enough for the whole range still gets all three values.
        #expect(try Self.rangeReply(frameBytesMax: 16 << 20).count > 3 * (120 << 10))
    }

    @Test func aConfigurationWhoseRangeReplyCannotFitIsRefused() throws {
        #expect(throws: ConfigError.self) { try Self.config(frameBytesMax: 256 << 10, rangeResultsMax: 100_000) }
        _ = try Self.config(frameBytesMax: 256 << 10, rangeResultsMax: 1000)
    }
}
