// swift-tools-version:6.0
// libFuzzer targets for every parser that reads bytes from the network or a file. Built apart
// from gantry, with the fuzzer and AddressSanitizer, and with testing enabled so that the
// harness reaches the parsers' internal types:
//   swift build --package-path fuzz --sanitize=fuzzer --sanitize=address -Xswiftc -sanitize=fuzzer,address -Xswiftc -enable-testing
//   GANTRY_FUZZ=http1-request fuzz/.build/debug/gantry-fuzz fuzz/corpus/http1-request
// fuzz/run runs every target for a bounded time, as CI does.
import PackageDescription

let package = Package(
    name: "gantry-fuzz",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "gantry", path: ".."),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
    ],
    targets: [
        .executableTarget(
            name: "gantry-fuzz",
            dependencies: [
                .product(name: "GantryCore", package: "gantry"),
                .product(name: "GantryConfig", package: "gantry"),
                .product(name: "GantryDNS", package: "gantry"),
                .product(name: "GantryProxy", package: "gantry"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        )
    ]
)
