@testable import BulwarkFuzz
import BulwarkTestSupport
import Foundation
import Testing

/// A bounded smoke run of every fuzz harness (`tools/fuzz` runs them for real under
/// libFuzzer): the committed corpus, the seeds, and deterministic mutations of them — bit
/// flips, boundary bytes and integers, truncations, repeats. A trap fails the run.
extension SeededRandom {
    /// A whole number below `n` (0 when `n` is 0).
    mutating func below(_ n: Int) -> Int { n <= 0 ? 0 : Int(next() % UInt64(n)) }
}

@Suite struct FuzzSmokeTests {
    static let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("FuzzCorpus").path

    static func mutate(_ input: [UInt8], _ rng: inout SeededRandom) -> [UInt8] {
        var bytes = input
        for _ in 0...rng.below(3) {
            let at = rng.below(bytes.count)
            switch rng.below(6) {
            case 0 where !bytes.isEmpty: bytes[at] ^= UInt8(1 << rng.below(8))
            case 1 where !bytes.isEmpty: bytes[at] = [0, 1, 0x7f, 0x80, 0xfe, 0xff][rng.below(6)]
            case 2 where bytes.count >= 8:
                let value: UInt64 = [0, 1, .max, .max - 1, 1 << 62, (1 << 62) + 1, 1 << 32][rng.below(7)]
                let start = min(at, bytes.count - 8)
                withUnsafeBytes(of: value.littleEndian) { for i in 0..<8 { bytes[start + i] = $0[i] } }
            case 3: bytes = Array(bytes.prefix(at))
            case 4 where !bytes.isEmpty:
                let end = min(bytes.count, at + 1 + rng.below(16))
                bytes.insert(contentsOf: bytes[at..<end], at: at)
            default: bytes.insert(UInt8(truncatingIfNeeded: rng.next()), at: at)
            }
        }
        return bytes
    }

    @Test(arguments: FuzzHarness.allCases)
    func aHarnessSurvivesItsCorpusAndMutations(harness: FuzzHarness) throws {
        let folder = Self.corpus + "/" + harness.rawValue
        let committed = ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).sorted()
            .compactMap { FileManager.default.contents(atPath: folder + "/" + $0).map(Array.init) }
        #expect(!committed.isEmpty, "no seed corpus in \(folder): run `bulwark-fuzz seed Tests/FuzzCorpus`")
        let inputs = committed + harness.seeds()
        for input in inputs { harness.run(input) }
        var rng = SeededRandom(seed: UInt64(harness.rawValue.utf8.reduce(0) { $0 &* 31 &+ UInt64($1) }))
        let mutations = harness == .replica ? 150 : 600
        for _ in 0..<mutations {
            harness.run(Self.mutate(inputs[rng.below(inputs.count)], &rng))
        }
    }

    /// The storage harnesses' second input form (records reframed with valid checksums) gives
    /// back exactly the files a replica writes: their seeds start from real formats.
    @Test func reframedSeedsAreTheRealFiles() throws {
        for harness in [FuzzHarness.blockLog, .wal, .segmentIndex] {
            let seeds = harness.seeds()
            let raw = try #require(seeds.first { $0.first == 0 })
            let reframed = try #require(seeds.first { $0.first == 1 })
            #expect(FuzzHarness.framed(reframed) == FuzzHarness.framed(raw), "\(harness)")
        }
    }

    /// The shell harness's seeds reach what they are for: a checkpoint proof starts a state
    /// transfer that the blocks frame completes, through the real checks.
    @Test func theShellHarnessReachesStateTransfer() {
        let seeds = FuzzHarness.shell.seeds()
        #expect(ShellScenario.run([]).height == ShellScenario.recoveredHeight)
        #expect(ShellScenario.run(seeds[0]).height == FuzzHarness.fixture.tip.height)
        #expect(ShellScenario.run(seeds[1]).height == FuzzHarness.fixture.tip.height)
    }
}
