// swift-tools-version: 6.1
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

// NIOLockedValueBox guards every target's shared state: a pthread mutex, which ThreadSanitizer
// (tsan/) follows, where Synchronization.Mutex's futex is invisible to it.
let locks: Target.Dependency = .product(name: "NIOConcurrencyHelpers", package: "swift-nio")

/// The data plane's release build leaves out run-time exclusivity checks: 28 per small proxied
/// request, most of them on SwiftNIO's `ByteBuffer` storage, inlined into every read and write
/// of a buffer. Debug builds, which `swift test` runs, keep every check, so an overlapping
/// access still traps in the tests.
let dataPlane: [SwiftSetting] = strict + [
    .unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release)),
]

let package = Package(
    name: "gantry",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "gantry", targets: ["gantry"]),
        // For fuzz/, the libFuzzer targets, which build against the parsers these hold.
        .library(name: "GantryCore", targets: ["GantryCore"]),
        .library(name: "GantryConfig", targets: ["GantryConfig"]),
        .library(name: "GantryDNS", targets: ["GantryDNS"]),
        .library(name: "GantryProxy", targets: ["GantryProxy"]),
        // For tsan/, which runs GantryCore's and GantryProxy's tests under ThreadSanitizer.
        .library(name: "GantryHandover", targets: ["GantryHandover"]),
        .library(name: "GantryExamples", targets: ["GantryExamples"]),
        .library(name: "GantryHTTP", targets: ["GantryHTTP"]),
        .library(name: "GantryTLS", targets: ["GantryTLS"]),
        .library(name: "GantryKubernetes", targets: ["GantryKubernetes"]),
        .library(name: "GantryPods", targets: ["GantryPods"]),
        .library(name: "GantryTestSupport", targets: ["GantryTestSupport"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/swiftlang/swift-subprocess.git", from: "1.0.2"),
        .package(url: "https://github.com/apple/swift-system.git", from: "1.8.1"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        .package(url: "https://github.com/vapor/jwt-kit.git", from: "5.8.0"),
        .package(url: "https://github.com/vapor/sqlite-nio.git", from: "1.13.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-nio-http2.git", from: "1.46.0"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.7.4"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-distributed-tracing.git", from: "1.7.3"),
        // OTLP over HTTP only: the gRPC exporter's dependencies would double the build.
        .package(url: "https://github.com/swift-otel/swift-otel.git", from: "1.6.0", traits: ["OTLPHTTP"]),
    ],
    targets: [
        // Pure domain: routing, balancing, request IDs, retry decisions, pod lifecycle, JWT checks,
        // token buckets. No I/O, no clocks.
        .target(
            name: "GantryCore",
            dependencies: [
                locks,
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "CryptoExtras", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),
        // The listening sockets and locks one gantry hands to the next (`gantry up --takeover`).
        .target(name: "GantryHandover", dependencies: [locks], swiftSettings: strict),
        // gantry.yaml → Spec → validation → RuntimeSnapshot.
        .target(
            name: "GantryConfig",
            dependencies: [
                locks,
                "GantryCore",
                .product(name: "Yams", package: "Yams"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        // TLS: the local certificate authority (swift-certificates) and listener contexts (swift-nio-ssl).
        .target(
            name: "GantryTLS",
            dependencies: [
                locks,
                "GantryCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),
        // DNS: the wire format and authoritative answers (pure), and the UDP/TCP server. Names,
        // records and zones are GantryCore's, so that the configuration can hold them.
        .target(
            name: "GantryDNS",
            dependencies: [
                locks,
                "GantryHandover",
                "GantryCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        // The NIO data plane.
        .target(
            name: "GantryProxy",
            dependencies: [
                locks,
                "GantryHandover",
                "GantryCore", "GantryConfig", "GantryHTTP", "GantryTLS",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: dataPlane
        ),
        // Pods: processes started with swift-subprocess, probed, restarted, drained.
        .target(
            name: "GantryPods",
            dependencies: [
                locks,
                "GantryHandover",
                "GantryCore", "GantryConfig", "GantryTLS",
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Subprocess", package: "swift-subprocess"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: strict
        ),
        // A small async HTTP/1.1 server for the admin API and the example pods.
        .target(
            name: "GantryHTTP",
            dependencies: [
                locks,
                "GantryHandover",
                "GantryTLS",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        // The Horizontal Pod Autoscaler loop: samples pods, applies GantryCore's HPA math.
        .target(
            name: "GantryAutoscaler",
            dependencies: ["GantryCore", "GantryConfig", "GantryPods", "GantryHTTP", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        // The admin API (JSON on loopback) and its client, used by `gantry get`, `scale`, `logs`.
        .target(
            name: "GantryAdmin",
            dependencies: [
                locks,
                "GantryCore", "GantryConfig", "GantryPods", "GantryHTTP", "GantryProxy",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: strict
        ),
        // Kubernetes: manifests from gantry.yaml (`gantry export kubernetes`), and the EndpointSlice
        // watch of `gantry up --kubernetes`.
        .target(
            name: "GantryKubernetes",
            dependencies: [
                locks,
                "GantryCore", "GantryConfig", "GantryHTTP", "GantryTLS",
                .product(name: "Yams", package: "Yams"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Subprocess", package: "swift-subprocess"),
                .product(name: "SystemPackage", package: "swift-system"),
            ],
            swiftSettings: strict
        ),
        // The example pods and upstreams that ship in the binary.
        .target(
            name: "GantryExamples",
            dependencies: [
                "GantryHTTP",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "CryptoExtras", package: "swift-crypto"),
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "SQLiteNIO", package: "sqlite-nio"),
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
                locks,
                "GantryCore", "GantryConfig", "GantryProxy", "GantryPods", "GantryAutoscaler", "GantryAdmin", "GantryExamples",
                "GantryHTTP", "GantryTLS", "GantryDNS", "GantryHandover", "GantryKubernetes",
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "OTel", package: "swift-otel"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
            ],
            swiftSettings: strict
        ),
        // Raw-socket HTTP client and polling helpers shared by the live and end-to-end tests.
        .target(name: "GantryTestSupport", path: "Tests/GantryTestSupport"),
        .testTarget(
            name: "GantryCoreTests",
            dependencies: [
                "GantryHandover",
                "GantryCore", "GantryDNS",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "CryptoExtras", package: "swift-crypto"),
            ]
        ),
        .testTarget(
            name: "GantryConfigTests",
            dependencies: [
                locks,
                "GantryConfig", "GantryCore",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "GantryProxyTests",
            dependencies: [
                locks,
                "GantryProxy", "GantryConfig", "GantryExamples", "GantryHTTP", "GantryTestSupport", "GantryTLS", "GantryDNS", "GantryKubernetes", "GantryPods",
                .product(name: "Yams", package: "Yams"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ]
        ),
        // Start the built `gantry` binary and drive it as a user would.
        .testTarget(name: "GantryEndToEndTests", dependencies: ["GantryTestSupport", "GantryHTTP", locks]),
    ]
)
