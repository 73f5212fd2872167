import Foundation
import GantryTestSupport
import Testing

@testable import GantryProxy

/// HTTP/2 floods, written frame by frame on a raw socket (h2c with prior knowledge): the
/// connection is closed with GOAWAY and the protocol error counted.
extension LiveProxyTests {
    static let h2cYAML: @Sendable ([Int]) -> String = { ports in
        """
        accessLog: {enabled: false}
        loadBalancer:
          listeners: [{name: plain, port: 0, http2: true}]
        gateway: {routes: [{path: /, service: app}]}
        services:
          - name: app
            endpoints: [\(ports.map { "127.0.0.1:\($0)" }.joined(separator: ", "))]
        """
    }

    /// One HTTP/2 frame (RFC 9113 §4.1).
    static func frame(type: UInt8, flags: UInt8, stream: UInt32, _ payload: [UInt8]) -> [UInt8] {
        let length = UInt32(payload.count)
        return [UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF), type, flags]
            + [UInt8(stream >> 24 & 0x7F), UInt8(stream >> 16 & 0xFF), UInt8(stream >> 8 & 0xFF), UInt8(stream & 0xFF)] + payload
    }

    /// GET / for example.com in HPACK: indexed :method GET, :scheme http, :path /, and a literal
    /// :authority (RFC 7541 appendix A, static table entries 2, 6, 4 and 1).
    static let getHeaders: [UInt8] = [0x82, 0x86, 0x84, 0x41, 11] + Array("example.com".utf8)
    static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8) + frame(type: 0x4, flags: 0, stream: 0, [])

    @Test func rapidResetClosesTheConnectionAndIsCounted() async throws {
        try await withProxy(yaml: Self.h2cYAML) { harness in
            let connection = try harness.connect()
            var bytes = Self.preface
            // CVE-2023-44487: open a stream and cancel it at once, again and again.
            for index in 0..<2000 {
                let stream = UInt32(2 * index + 1)
                bytes += Self.frame(type: 0x1, flags: 0x4, stream: stream, Self.getHeaders)  // HEADERS, END_HEADERS
                bytes += Self.frame(type: 0x3, flags: 0, stream: stream, [0, 0, 0, 8])  // RST_STREAM CANCEL
            }
            try? connection.send(bytes)
            #expect(await connection.waitForClose(timeout: 10))
            #expect(await eventually { await harness.plane.counters()[.http2ProtocolErrors] >= 1 })
        }
    }

    @Test func continuationFloodClosesTheConnection() async throws {
        try await withProxy(yaml: Self.h2cYAML) { harness in
            let connection = try harness.connect()
            var bytes = Self.preface
            // A header block that never ends: HEADERS without END_HEADERS, then CONTINUATIONs.
            bytes += Self.frame(type: 0x1, flags: 0, stream: 1, Self.getHeaders)
            for _ in 0..<1000 {
                bytes += Self.frame(type: 0x9, flags: 0, stream: 1, [0x40, 1, 0x61, 1, 0x62])  // literal a: b
            }
            try? connection.send(bytes)
            #expect(await connection.waitForClose(timeout: 10))
            #expect(await eventually { await harness.plane.counters()[.http2ProtocolErrors] >= 1 })
            #expect(harness.upstreamRequestCount == 0)
        }
    }
}
