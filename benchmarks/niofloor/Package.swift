// swift-tools-version: 6.1
import PackageDescription

// A reference point for the benchmarks, not part of gantry: see Sources/niofloor/main.swift.
let package = Package(
    name: "niofloor",
    dependencies: [.package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2")],
    targets: [
        .executableTarget(
            name: "niofloor",
            dependencies: [.product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio")])
    ]
)
