// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "Bulwark",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "bulwark", targets: ["bulwark"]),
        .library(name: "BulwarkCore", targets: ["BulwarkCore"]),
        .library(name: "BulwarkConsensus", targets: ["BulwarkConsensus"]),
        .library(name: "BulwarkSimulation", targets: ["BulwarkSimulation"]),
        .library(name: "BulwarkStorage", targets: ["BulwarkStorage"]),
        .executable(name: "bulwark-sim", targets: ["bulwark-sim"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CSodium",
            pkgConfig: "libsodium",
            providers: [.apt(["libsodium-dev"])]
        ),
        .target(
            name: "BulwarkCore",
            dependencies: ["CSodium"]
        ),
        .target(
            name: "BulwarkConsensus",
            dependencies: ["BulwarkCore"]
        ),
        .target(
            name: "BulwarkStorage",
            dependencies: ["BulwarkCore"]
        ),
        .target(
            name: "BulwarkSimulation",
            dependencies: [
                "BulwarkCore", "BulwarkConsensus",
                .product(name: "HeapModule", package: "swift-collections"),
            ]
        ),
        .executableTarget(
            name: "bulwark-storage-bench",
            dependencies: [
                "BulwarkCore", "BulwarkStorage",
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
            dependencies: [
                "BulwarkCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(
            name: "BulwarkCoreTests",
            dependencies: ["BulwarkCore"]
        ),
        .target(
            name: "BulwarkTestSupport",
            dependencies: ["BulwarkCore"]
        ),
        .testTarget(
            name: "BulwarkStorageTests",
            dependencies: ["BulwarkCore", "BulwarkStorage", "BulwarkTestSupport"]
        ),
        .testTarget(
            name: "BulwarkConsensusTests",
            dependencies: ["BulwarkCore", "BulwarkConsensus", "BulwarkSimulation"]
        ),

    ]
)
