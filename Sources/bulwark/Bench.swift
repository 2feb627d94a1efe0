import ArgumentParser
import BulwarkClient
import BulwarkCore
import Foundation
import Histogram
import NIOPosix

struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure a running cluster: throughput and latency percentiles.",
        discussion: """
            Runs N clients in this process, each with its own key, for the given duration. Closed \
            loop by default (each client sends its next request when the last one completes); with \
            --rate, requests are paced to that total rate and latency counts from each request's \
            intended start, so a stalled cluster cannot hide its delay.
            """
    )

    @Option(help: "Concurrent clients.") var clients = 16
    @Option(help: "Seconds to run.") var duration = 10
    @Option(name: .customLong("value-size"), help: "Bytes per written value.") var valueSize = 100
    @Option(help: "Percentage of reads (get); the rest are puts.") var reads = 0
    @Flag(help: "Order every read through consensus, skipping the fast path.") var ordered = false
    @Option(help: "Distinct keys written.") var keys = 10_000
    @Option(help: "Target total requests per second (open loop); omit for closed loop.") var rate: Int?
    @OptionGroup var clusterFile: ClusterFile
    @Flag(help: "Print the figures as JSON.") var json = false

    func validate() throws {
        guard clients >= 1, duration >= 1, valueSize >= 0, keys >= 1 else { throw ValidationError("counts must be positive") }
        guard (0...100).contains(reads) else { throw ValidationError("--reads is a percentage: 0...100") }
        if let rate, rate < 1 { throw ValidationError("--rate must be positive") }
    }

    struct Tally: Sendable {
        var latencies = Histogram<UInt64>(highestTrackableValue: 120_000_000, numberOfSignificantValueDigits: .three)
        var completed = 0
        var failed = 0
        /// Reads answered without ordering (SPEC.md §8.6).
        var fastReads = 0
    }

    func run() async throws {
        let path = clusterFile.path
        let cluster: ClusterConfig
        do { cluster = try ClusterConfig.load(from: path) } catch { throw Self.fail(error) }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let ledgerClients = (0..<clients).map { _ in LedgerClient(config: cluster, key: .generate(), group: group) }
        let value = [UInt8](repeating: 0x61, count: valueSize)
        let interval: Duration? = rate.map { .nanoseconds(Int64(1_000_000_000) * Int64(clients) / Int64($0)) }
        let started = ContinuousClock.now
        let deadline = started + .seconds(duration)
        let tallies = await withTaskGroup(of: Tally.self) { tasks in
            for (index, client) in ledgerClients.enumerated() {
                tasks.addTask {
                    await drive(client, index: index, value: value, interval: interval, started: started, deadline: deadline)
                }
            }
            var all: [Tally] = []
            for await tally in tasks { all.append(tally) }
            return all
        }
        let elapsed = ContinuousClock.now - started
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        for client in ledgerClients { await client.shutdown() }
        try? await group.shutdownGracefully()
        var merged = Tally()
        for tally in tallies {
            merged.completed += tally.completed
            merged.failed += tally.failed
            merged.fastReads += tally.fastReads
            for value in tally.latencies.recordedValues() {
                _ = merged.latencies.record(value.value, count: value.count)
            }
        }
        try report(merged, seconds: seconds)
        if merged.completed == 0 { throw ExitCode.failure }
    }

    /// One client's requests until `deadline`: closed loop, or paced every `interval` from its
    /// share of the start, latency counted from each request's intended start.
    func drive(_ client: LedgerClient, index: Int, value: [UInt8], interval: Duration?, started: ContinuousClock.Instant,
               deadline: ContinuousClock.Instant) async -> Tally {
        var tally = Tally()
        var rng = SystemRandomNumberGenerator()
        var next = started + (interval.map { $0 * Double(index) / Double(clients) } ?? .zero)
        while ContinuousClock.now < deadline {
            if interval != nil {
                if next > ContinuousClock.now { try? await Task.sleep(until: next, clock: .continuous) }
                guard ContinuousClock.now < deadline else { break }
            } else {
                next = ContinuousClock.now
            }
            let key = Array("bench-\(Int.random(in: 0..<keys, using: &rng))".utf8)
            let read = Int.random(in: 0..<100, using: &rng) < reads
            do {
                if read && !ordered {
                    if try await client.read(key, timeout: .seconds(30)).fastPath { tally.fastReads += 1 }
                } else {
                    _ = try await client.execute(read ? .get(key: key) : .put(key: key, value: value), timeout: .seconds(30))
                }
                let elapsed = ContinuousClock.now - next
                _ = tally.latencies.record(UInt64(max(1, elapsed.components.seconds * 1_000_000
                    + elapsed.components.attoseconds / 1_000_000_000_000)))
                tally.completed += 1
            } catch {
                tally.failed += 1
            }
            if let interval { next += interval }
        }
        return tally
    }

    /// Prints the merged figures, as text or JSON.
    func report(_ merged: Tally, seconds: Double) throws {
        let ms = { (p: Double) in Double(merged.latencies.valueAtPercentile(p)) / 1000 }
        let throughput = Double(merged.completed) / seconds
        if json {
            let report: [String: Any] = [
                "clients": clients, "seconds": seconds, "completed": merged.completed, "failed": merged.failed,
                "throughputPerSecond": throughput, "valueBytes": valueSize, "readPercent": reads,
                "fastReads": merged.fastReads,
                "latencyMs": ["p50": ms(50), "p90": ms(90), "p99": ms(99), "p999": ms(99.9), "max": Double(merged.latencies.max) / 1000],
            ]
            let data = try JSONSerialization.data(withJSONObject: report, options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            print(String(format: "%d clients, %.1f s: %d requests (%d failed), %.0f requests/s", clients, seconds,
                         merged.completed, merged.failed, throughput))
            if reads > 0 { print("reads answered without ordering: \(merged.fastReads)") }
            print(String(format: "latency ms: p50 %.2f  p90 %.2f  p99 %.2f  p99.9 %.2f  max %.2f", ms(50), ms(90), ms(99),
                         ms(99.9), Double(merged.latencies.max) / 1000))
        }
    }
}
