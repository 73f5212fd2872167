// swift-tools-version: 6.1
// GantryCore's and GantryProxy's tests under ThreadSanitizer, built apart from gantry (as fuzz/
// is) so that only what those tests use is instrumented:
//   swift build --package-path tsan --build-tests --sanitize=thread -Xswiftc -enforce-exclusivity=unchecked
//   GANTRY_BINARY=.build/debug/gantry TSAN_OPTIONS=suppressions=tsan/suppressions.txt swift test --package-path tsan --skip-build
// tsan/run does both, as CI does. Tests/ holds links to the root's test directories.
//
// Run-time exclusivity checks are left out of this build: under ThreadSanitizer they report
// through its "external access" hooks, which crash inside ThreadSanitizer on generic `inout`
// arguments with this toolchain. Plain memory accesses are still all instrumented, and the
// debug build of `swift test` keeps every exclusivity check.
import PackageDescription

let package = Package(
    name: "gantry-tsan",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "gantry", path: ".."),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
    ],
    targets: [
        .testTarget(
            name: "GantryCoreTests",
            dependencies: [
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "GantryHandover", package: "gantry"),
                .product(name: "GantryCore", package: "gantry"),
                .product(name: "GantryDNS", package: "gantry"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "CryptoExtras", package: "swift-crypto"),
            ]
        ),
        .testTarget(
            name: "GantryProxyTests",
            dependencies: [
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "GantryProxy", package: "gantry"),
                .product(name: "GantryConfig", package: "gantry"),
                .product(name: "GantryExamples", package: "gantry"),
                .product(name: "GantryHTTP", package: "gantry"),
                .product(name: "GantryTestSupport", package: "gantry"),
                .product(name: "GantryTLS", package: "gantry"),
                .product(name: "GantryDNS", package: "gantry"),
                .product(name: "GantryKubernetes", package: "gantry"),
                .product(name: "GantryPods", package: "gantry"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ]
        ),
    ]
)
