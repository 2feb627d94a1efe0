import Foundation

/// Runs a built executable of this package, as a user would.
public struct ProductBinary: Sendable {
    public let name: String

    /// Set for an executable that is not one of this package's products.
    let path: String?

    public init(_ name: String) {
        self.name = name
        path = nil
    }

    /// Any executable at `path` (a script's interpreter, say), run the same way.
    public init(path: String) {
        self.name = String(path.split(separator: "/").last ?? Substring(path))
        self.path = path
    }

    public var url: URL {
        if let path { return URL(fileURLWithPath: path) }
        // Test bundles sit in the same build products directory as the executables.
        let products = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        let candidates = [products, products.deletingLastPathComponent()].map { $0.appendingPathComponent(name) }
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) } ?? candidates[0]
    }

    public var isBuilt: Bool { FileManager.default.isExecutableFile(atPath: url.path) }

    public struct Result: Sendable {
        public let status: Int32
        public let stdout: String
        public let stderr: String
        /// Ended by a signal (a trap, a kill), not an exit.
        public var killedBySignal = false
    }

    /// The executable and arguments that run this binary with `arguments`, behind `prefix`
    /// (for example `/usr/sbin/ip netns exec NS`) when one is given.
    public func command(_ arguments: [String], prefix: [String] = []) -> (URL, [String]) {
        guard let first = prefix.first else { return (url, arguments) }
        return (URL(fileURLWithPath: first), Array(prefix.dropFirst()) + [url.path] + arguments)
    }

    /// Runs the binary to completion; one still running after `timeout` is killed, so a test
    /// never waits forever.
    public func run(_ arguments: [String], prefix: [String] = [], environment: [String: String] = [:],
                    timeout: Duration = .seconds(120)) throws -> Result {
        let process = Process()
        (process.executableURL, process.arguments) = command(arguments, prefix: prefix)
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        // Read both pipes to the end before waiting, so a chatty child cannot block on a full pipe.
        nonisolated(unsafe) var stderrData = Data()
        let reader = Thread { stderrData = err.fileHandleForReading.readDataToEndOfFile() }
        reader.start()
        let pid = process.processIdentifier
        let watchdog = Thread {
            let deadline = ContinuousClock.now + timeout
            while ContinuousClock.now < deadline {
                if kill(pid, 0) != 0 { return }
                usleep(20_000)
            }
            kill(pid, SIGKILL)
        }
        watchdog.start()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        while !reader.isFinished { usleep(1000) }
        return Result(status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
                      stderr: String(decoding: stderrData, as: UTF8.self),
                      killedBySignal: process.terminationReason == .uncaughtSignal)
    }
}
