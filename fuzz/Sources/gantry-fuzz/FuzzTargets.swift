import Foundation
import GantryConfig
import GantryCore
import GantryDNS
import NIOCore
import NIOEmbedded
import NIOHTTP1

@testable import GantryProxy

/// One binary for every target; `GANTRY_FUZZ` names the one libFuzzer runs. Each checks more
/// than "does not crash" where the parser has an invariant to hold.
enum FuzzTarget: String, CaseIterable {
    case http1Request = "http1-request"
    case http1Response = "http1-response"
    case http2Preface = "http2-preface"
    case dns
    case jws
    case json
    case config

    static let chosen: FuzzTarget = {
        let name = ProcessInfo.processInfo.environment["GANTRY_FUZZ"] ?? ""
        guard let target = FuzzTarget(rawValue: name) else {
            fatalError("set GANTRY_FUZZ to one of \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return target
    }()

    func run(_ bytes: [UInt8]) {
        switch self {
        case .http1Request: HTTP1RequestFuzz.run(bytes)
        case .http1Response: HTTP1ResponseFuzz.run(bytes)
        case .http2Preface: PrefaceFuzz.run(bytes)
        case .dns: DNSFuzz.run(bytes)
        case .jws: JWSFuzz.run(bytes)
        case .json: JSONFuzz.run(bytes)
        case .config: ConfigFuzz.run(bytes)
        }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    FuzzTarget.chosen.run(Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}

/// Stops the run with the input saved as a crash: an invariant did not hold.
func require(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
    if !condition() { fatalError("invariant broken: \(message())") }
}
