import BulwarkFuzz
import CFuzzEntry
import Foundation

#if FUZZING
/// libFuzzer's entry point (`tools/fuzz` builds this with -sanitize=fuzzer -DFUZZING): one
/// input to the harness named by BULWARK_FUZZ_HARNESS.
let harness: FuzzHarness = {
    let name = ProcessInfo.processInfo.environment["BULWARK_FUZZ_HARNESS"] ?? ""
    guard let harness = FuzzHarness(rawValue: name) else {
        FileHandle.standardError.write(Data("BULWARK_FUZZ_HARNESS must be one of: \(FuzzHarness.allCases.map(\.rawValue).joined(separator: ", "))\n".utf8))
        exit(2)
    }
    return harness
}()

@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>) -> CInt {
    _ = harness
    FuzzHarness.prepare()
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    harness.run(Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}
#else
import ArgumentParser

/// Without libFuzzer: replays inputs (a crash found elsewhere, a corpus) through a harness,
/// and writes the seed corpora.
@main
struct BulwarkFuzzCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bulwark-fuzz",
        abstract: "Replay inputs through a fuzz harness, or write the seed corpora.",
        discussion: """
            Harnesses: \(FuzzHarness.allCases.map(\.rawValue).joined(separator: ", ")). \
            tools/fuzz HARNESS SECONDS runs one under libFuzzer.
            """,
        subcommands: [Replay.self, Seed.self]
    )

    struct Replay: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Run every file (or every file in each directory) through HARNESS.")
        @Argument(help: "The harness.") var harness: String
        @Argument(help: "Input files or directories.") var inputs: [String]

        func validate() throws {
            guard FuzzHarness(rawValue: harness) != nil else {
                throw ValidationError("unknown harness '\(harness)'; known: \(FuzzHarness.allCases.map(\.rawValue).joined(separator: ", "))")
            }
        }

        func run() throws {
            let harness = FuzzHarness(rawValue: harness)!
            var count = 0
            for path in try files(inputs) {
                guard let data = FileManager.default.contents(atPath: path) else { throw ValidationError("cannot read \(path)") }
                harness.run(Array(data))
                count += 1
            }
            print("\(count) inputs ran through \(harness.rawValue) without a fault")
        }
    }

    struct Seed: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Write each harness's seeds into DIR/HARNESS/.")
        @Argument(help: "The corpus directory (Tests/FuzzCorpus in the repository).") var directory: String

        func run() throws {
            for harness in FuzzHarness.allCases {
                let folder = directory + "/" + harness.rawValue
                try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
                // At most 64 files per harness, spread over the seeds: a corpus to start from,
                // not a copy of what the harness can make itself.
                let seeds = harness.seeds()
                let step = max(1, seeds.count / 64)
                let chosen = stride(from: 0, to: seeds.count, by: step).map { seeds[$0] }
                for (i, seed) in chosen.enumerated() {
                    try Data(seed).write(to: URL(fileURLWithPath: folder + "/seed-\(i)"))
                }
                print("\(harness.rawValue): \(chosen.count) of \(seeds.count) seeds written")
            }
        }
    }
}

/// The files named, and the files directly inside the directories named, sorted.
func files(_ inputs: [String]) throws -> [String] {
    try inputs.flatMap { path -> [String] in
        var directory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &directory) else {
            throw ValidationError("no such file or directory: \(path)")
        }
        guard directory.boolValue else { return [path] }
        return try FileManager.default.contentsOfDirectory(atPath: path).sorted().map { path + "/" + $0 }
    }
}
#endif
