// swift-tools-version: 6.1
import PackageDescription

/// The modules the deterministic simulations spend their time in are optimized in debug
/// builds too (overflow checks and preconditions stay: `-O`, not `-Ounchecked`): the test
/// suite runs thousands of simulated seconds through them, and unoptimized it took most of
/// CI's time. Everything else keeps debug's fast builds.
let optimizedEvenInDebug: [SwiftSetting] = [.unsafeFlags(["-O"], .when(configuration: .debug))]

let package = Package(
    name: "Bulwark",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "bulwark", targets: ["bulwark"]),
        .library(name: "BulwarkCore", targets: ["BulwarkCore"]),
        .library(name: "BulwarkConsensus", targets: ["BulwarkConsensus"]),
        .library(name: "BulwarkSimulation", targets: ["BulwarkSimulation"]),
        .library(name: "BulwarkStorage", targets: ["BulwarkStorage"]),
        .executable(name: "bulwark-verify", targets: ["bulwark-verify"]),
        .executable(name: "bulwark-sim", targets: ["bulwark-sim"]),
        .executable(name: "bulwark-byzantine", targets: ["bulwark-byzantine"]),
        .executable(name: "bulwark-fuzz", targets: ["bulwark-fuzz"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CSodium",
            pkgConfig: "libsodium",
            providers: [.apt(["libsodium-dev"])]
        ),
        .target(
            name: "BulwarkCore",
            dependencies: ["CSodium"],
            swiftSettings: optimizedEvenInDebug
        ),
        // The replicated state machine: KeyValueState executing operations under the client
        // policy and governance; free of I/O (its key history is a store it is given).
        .target(
            name: "BulwarkStateMachine",
            dependencies: ["BulwarkCore"],
            swiftSettings: optimizedEvenInDebug
        ),
        .target(
            name: "BulwarkConsensus",
            dependencies: ["BulwarkCore"],
            swiftSettings: optimizedEvenInDebug
        ),
        // Byzantine behaviours for fault injection: rewrites an honest core's output.
        .target(
            name: "BulwarkAdversary",
            dependencies: ["BulwarkCore", "BulwarkConsensus", "BulwarkShell"],
            swiftSettings: optimizedEvenInDebug
        ),
        .target(
            name: "BulwarkStorage",
            dependencies: ["BulwarkCore"],
            swiftSettings: optimizedEvenInDebug
        ),
        // The replica shell: everything between the core and the world, behind narrow
        // interfaces (file system, network, clock), driven by the NIO node and the simulator.
        .target(
            name: "BulwarkShell",
            dependencies: ["BulwarkStateMachine", 
                "BulwarkCore", "BulwarkConsensus", "BulwarkStorage",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: optimizedEvenInDebug
        ),
        // Authenticated, framed TCP shared by replicas and clients.
        .target(
            name: "BulwarkTransport",
            dependencies: [
                "BulwarkCore", "CSodium",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "BulwarkNode",
            dependencies: [
                "BulwarkCore", "BulwarkConsensus", "BulwarkStorage", "BulwarkTransport", "BulwarkShell",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        .target(
            name: "BulwarkClient",
            dependencies: [
                "BulwarkCore", "BulwarkTransport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The auditor's trusted code: Core and the log reader, nothing else.
        .target(
            name: "BulwarkVerify",
            dependencies: ["BulwarkStateMachine", "BulwarkCore", "BulwarkStorage"]
        ),
        .executableTarget(
            name: "bulwark-verify",
            dependencies: ["BulwarkStateMachine", 
                "BulwarkVerify", "BulwarkCore", "BulwarkStorage",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .target(
            name: "BulwarkSimulation",
            dependencies: [
                "BulwarkCore", "BulwarkConsensus", "BulwarkStorage", "BulwarkAdversary", "BulwarkShell", "BulwarkVerify",
                "BulwarkTestSupport",
                .product(name: "HeapModule", package: "swift-collections"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: optimizedEvenInDebug
        ),
        .executableTarget(
            name: "bulwark-storage-bench",
            dependencies: [
                "BulwarkStateMachine", "BulwarkCore", "BulwarkStorage", "BulwarkTestSupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "bulwark-byzantine",
            dependencies: [
                "BulwarkAdversary", "BulwarkConsensus", "BulwarkCore", "BulwarkNode", "BulwarkStorage", "BulwarkTransport",
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // Fuzz harnesses for every decoder and a structure-aware replica harness (tools/fuzz).
        .target(
            name: "BulwarkFuzz",
            dependencies: ["BulwarkStateMachine", 
                "BulwarkCore", "BulwarkConsensus", "BulwarkStorage", "BulwarkAdversary", "BulwarkTestSupport", "BulwarkShell",
                "BulwarkTransport",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(name: "CFuzzEntry"),
        .executableTarget(
            name: "bulwark-fuzz",
            dependencies: [
                "BulwarkFuzz", "CFuzzEntry",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "bulwark-sim",
            dependencies: [
                "BulwarkSimulation",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(
            name: "bulwark",
            dependencies: ["BulwarkStateMachine", 
                "BulwarkCore", "BulwarkNode", "BulwarkClient", "BulwarkStorage",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(
            name: "BulwarkCoreTests",
            dependencies: ["BulwarkStateMachine", "BulwarkCore", "BulwarkStorage", "BulwarkTestSupport"]
        ),
        .target(
            name: "BulwarkTestSupport",
            dependencies: ["BulwarkStateMachine", "BulwarkCore"]
        ),
        .testTarget(
            name: "BulwarkStorageTests",
            dependencies: ["BulwarkStateMachine", "BulwarkCore", "BulwarkStorage", "BulwarkTestSupport"]
        ),
        .testTarget(
            name: "BulwarkNodeTests",
            dependencies: ["BulwarkStateMachine", 
                "BulwarkCore", "BulwarkNode", "BulwarkTransport", "BulwarkTestSupport", "BulwarkClient", "BulwarkStorage",
                "BulwarkVerify",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "BulwarkVerifyTests",
            dependencies: ["BulwarkStateMachine", "BulwarkCore", "BulwarkStorage", "BulwarkVerify", "BulwarkTestSupport", "BulwarkSimulation"]
        ),
        .testTarget(
            name: "BulwarkConsensusTests",
            dependencies: ["BulwarkStateMachine", "BulwarkCore", "BulwarkConsensus", "BulwarkSimulation", "BulwarkShell", "BulwarkAdversary"]
        ),
        .testTarget(
            name: "BulwarkShellTests",
            dependencies: ["BulwarkStateMachine", 
                "BulwarkCore", "BulwarkConsensus", "BulwarkStorage", "BulwarkShell", "BulwarkSimulation",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "BulwarkFuzzTests",
            dependencies: ["BulwarkFuzz", "BulwarkTestSupport"]
        ),

    ]
)
