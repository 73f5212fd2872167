// swift-tools-version: 6.1
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "gantry",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "gantry", targets: ["gantry"])
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
    ],
    targets: [
        // Pure domain: routing, balancing, request IDs, retry decisions. No I/O, no clocks.
        .target(name: "GantryCore", swiftSettings: strict),
        // gantry.yaml → Spec → validation → RuntimeSnapshot.
        .target(
            name: "GantryConfig",
            dependencies: ["GantryCore", .product(name: "Yams", package: "Yams")],
            swiftSettings: strict
        ),
        // The NIO data plane.
        .target(
            name: "GantryProxy",
            dependencies: [
                "GantryCore", "GantryConfig",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        // The example pods and upstreams that ship in the binary.
        .target(
            name: "GantryExamples",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "gantry",
            dependencies: [
                "GantryCore", "GantryConfig", "GantryProxy", "GantryExamples",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        // Raw-socket HTTP client and polling helpers shared by the live and end-to-end tests.
        .target(name: "GantryTestSupport", path: "Tests/GantryTestSupport"),
        .testTarget(name: "GantryCoreTests", dependencies: ["GantryCore"]),
        .testTarget(name: "GantryConfigTests", dependencies: ["GantryConfig"]),
        .testTarget(
            name: "GantryProxyTests",
            dependencies: [
                "GantryProxy", "GantryConfig", "GantryExamples", "GantryTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        // Start the built `gantry` binary and drive it as a user would.
        .testTarget(name: "GantryEndToEndTests", dependencies: ["GantryTestSupport"]),
    ]
)
