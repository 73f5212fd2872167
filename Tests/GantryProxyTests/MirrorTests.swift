import Foundation
import GantryTestSupport
import NIOPosix
import Testing

@testable import GantryProxy

/// A route's mirror (Envoy's `request_mirror_policies`): the shadow gets a copy of each request
/// its share draws, head and body, marked `-shadow` in Host; the client's answer comes from the
/// route's service and never waits for the shadow, here one that never answers.
extension LiveProxyTests {
    @Test func aMirrorGetsACopyAndNeverDelaysTheClient() async throws {
        let shadow = try await MisbehavingUpstream(mode: .neverAnswer, group: MultiThreadedEventLoopGroup.singleton)
        let yaml = { (ports: [Int]) in
            """
            accessLog: {enabled: false}
            loadBalancer: {listeners: [{name: http, port: 0}]}
            gateway:
              routes:
                - {path: /, service: app, mirror: {service: shadow}}
                - {path: /none, service: app, mirror: {service: shadow, percent: 0}}
            services:
              - {name: app, endpoints: [127.0.0.1:\(ports[0])]}
              - {name: shadow, endpoints: [127.0.0.1:\(shadow.port)]}
            """
        }
        try await withProxy(upstreams: 1, yaml: yaml) { harness in
            let get = try await harness.get("/a?x=1", headers: ["X-Trace-Me: yes"])
            #expect(get.status == 200)
            #expect(try get.json()["server"] as? String == "echo-0")
            let connection = try harness.connect()
            try connection.send(request(["POST /b HTTP/1.1", "Host: example.com", "Content-Length: 5"]) + "hello")
            #expect(try await connection.readResponse().status == 200)
            try connection.send(request(["GET /none HTTP/1.1", "Host: example.com"]))
            #expect(try await connection.readResponse().status == 200)
            #expect(await eventually { shadow.requests == 2 }, "\(shadow.received)")
            let copies = shadow.received.lowercased()
            #expect(copies.contains("get /a?x=1 http/1.1") && copies.contains("x-trace-me: yes"), "\(copies)")
            #expect(copies.contains("post /b http/1.1") && copies.contains("content-length: 5") && copies.hasSuffix("hello"), "\(copies)")
            #expect(copies.contains("host: example.com-shadow"), "\(copies)")
            #expect(!copies.contains("/none"), "a 0% mirror copies nothing")
            #expect(harness.upstreams[0].requestCount == 3)
            #expect(await harness.plane.counters()[.mirroredRequests] == 2)
        }
    }
}
