import BulwarkCore
import BulwarkTestSupport
import Foundation
import Glibc
import NIOConcurrencyHelpers
import Testing

/// What a raw socket sees on the machine's interfaces (loopback included) while it runs: the
/// bytes of every IPv4 TCP packet to or from one of `ports`, bounded (other tests' traffic is
/// left out). Needs CAP_NET_RAW (root); nil without it.
final class PacketCapture: @unchecked Sendable {
    let fd: Int32
    let ports: Set<UInt16>
    let bytes = NIOLockedValueBox<[UInt8]>([])
    let overflowed = NIOLockedValueBox(false)
    let stopped = NIOLockedValueBox(false)
    let done = DispatchSemaphore(value: 0)
    /// The cluster's own traffic runs at about 350 KB/s (retransmissions included), and a
    /// loaded test run can stretch the test to many minutes.
    static let bytesMax = 1 << 30

    init?(ports: Set<UInt16>) {
        self.ports = ports
        // AF_PACKET, SOCK_RAW, ETH_P_ALL (3) in network byte order: every packet, every interface.
        fd = socket(AF_PACKET, Int32(SOCK_RAW.rawValue), Int32(UInt16(3).bigEndian))
        guard fd >= 0 else { return nil }
        var timeout = timeval(tv_sec: 0, tv_usec: 100_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        Thread.detachNewThread { [self] in
            var buffer = [UInt8](repeating: 0, count: 1 << 16)
            while !stopped.withLockedValue({ $0 }) {
                let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                guard n > 0, Self.isTCP(buffer, count: n, between: ports) else { continue }
                bytes.withLockedValue { captured in
                    if captured.count < Self.bytesMax { captured += buffer[0..<n] } else { overflowed.withLockedValue { $0 = true } }
                }
            }
            done.signal()
        }
    }

    /// An Ethernet frame holding an IPv4 TCP segment with one of `ports` at either end.
    static func isTCP(_ frame: [UInt8], count: Int, between ports: Set<UInt16>) -> Bool {
        guard count >= 14 + 20, frame[12] == 0x08, frame[13] == 0x00, frame[14] >> 4 == 4, frame[23] == 6 else { return false }
        let ip = 14 + Int(frame[14] & 0x0f) * 4
        guard count >= ip + 4 else { return false }
        let source = UInt16(frame[ip]) << 8 | UInt16(frame[ip + 1]), destination = UInt16(frame[ip + 2]) << 8 | UInt16(frame[ip + 3])
        return ports.contains(source) || ports.contains(destination)
    }

    /// Stops capturing and returns everything captured.
    func stop() -> [UInt8] {
        stopped.withLockedValue { $0 = true }
        done.wait()
        close(fd)
        return bytes.withLockedValue { $0 }
    }
}

extension [UInt8] {
    /// Whether `needle` occurs in these bytes (Foundation's search, compiled optimized).
    func contains(_ needle: [UInt8]) -> Bool {
        guard !needle.isEmpty, needle.count <= count else { return false }
        return Data(self).range(of: Data(needle)) != nil
    }
}

/// Links are encrypted (SPEC.md §15): while a unique value is written, read and carried to a
/// replica by state transfer, it appears nowhere in the packets on the machine's interfaces,
/// though the handshakes (which name the cluster in the clear) do.
@Suite(.serialized, .enabled(if: bulwarkBinary.isBuilt, "skipped: the bulwark executable was not built"))
struct EncryptionTests {
    @Test(.enabled(if: PacketCapture.permitted, "skipped: capturing packets needs CAP_NET_RAW (root)"))
    func aValueWrittenAndReadIsNowhereOnTheWire() async throws {
        let cluster = try LocalCluster()
        let dir = cluster.directory
        defer { cluster.stopAll() }
        let ports = Set(cluster.config.validators.flatMap { [$0.replicaAddress.port, $0.clientAddress.port] })
        let capture = try #require(PacketCapture(ports: ports))
        for i in 0..<3 { try cluster.start(i) }
        let value = "secret-\(UUID().uuidString)"
        func client(_ arguments: [String]) throws -> ProductBinary.Result {
            try bulwarkBinary.run(arguments + ["--config", dir + "/cluster.json", "--key", dir + "/client.key", "--timeout", "20"],
                                  timeout: .seconds(40))
        }
        let written = try client(["put", "capture-key", value])
        let read = try client(["get", "capture-key"])
        // Enough blocks for a checkpoint, then replica 3 starts late and fetches them all.
        for i in 0..<8 { _ = try client(["put", "filler-\(i)", "x"]) }
        try cluster.start(3)
        var caughtUp = false
        for _ in 0..<200 where !caughtUp {
            caughtUp = cluster.height(3) >= 9
            if !caughtUp { try await Task.sleep(for: .milliseconds(50)) }
        }
        let captured = capture.stop()
        #expect(written.status == 0 && read.status == 0 && read.stdout.contains(value), "\(read.stdout) \(read.stderr)")
        #expect(caughtUp, "replica 3 did not catch up by state transfer")
        let clusterID = cluster.config.clusterID.raw.withUnsafeBytes { Array($0) }
        #expect(!capture.overflowed.withLockedValue { $0 }, "the capture filled up: it cannot tell")
        let sawHandshakes = captured.contains(clusterID)
        let sawValue = captured.contains(Array(value.utf8)), sawKey = captured.contains(Array("capture-key".utf8))
        #expect(sawHandshakes, "the capture (\(captured.count) bytes) saw none of the cluster's handshakes")
        #expect(!sawValue, "the value travelled in the clear")
        #expect(!sawKey, "the key travelled in the clear")
    }
}

extension PacketCapture {
    static var permitted: Bool {
        let fd = socket(AF_PACKET, Int32(SOCK_RAW.rawValue), Int32(UInt16(3).bigEndian))
        guard fd >= 0 else { return false }
        close(fd)
        return true
    }
}
