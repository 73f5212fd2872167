import Foundation
import GantryCore
import GantryDNS
import GantryTestSupport
import NIOPosix
import Testing

/// The DNS server on real UDP and TCP sockets, queried with dig.
struct DNSServerTests {
    static func zone() throws -> DNSZone {
        let origin = try DNSName("example.com")
        let long = String(repeating: "x", count: 200)
        return try DNSZone(
            origin: origin,
            soa: DNSZone.SOA(mname: try DNSName("ns.example.com"), rname: try DNSName("hostmaster.example.com"), serial: 7, minimum: 60),
            records: [
                DNSResourceRecord(name: origin, ttl: 30, data: .a(IPv4Address(127, 0, 0, 1))),
                DNSResourceRecord(name: try DNSName("www.example.com"), ttl: 30, data: .cname(origin)),
                // Big enough that the answer does not fit 512 bytes: TC over UDP without EDNS.
                DNSResourceRecord(name: try DNSName("big.example.com"), ttl: 30, data: .txt(Array(repeating: long, count: 4))),
            ])
    }

    func withServer(_ body: (Int) async throws -> Void) async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let server = DNSServer(authority: DNSAuthority(zones: [try Self.zone()]), group: group)
        let port = try await server.start(host: "127.0.0.1", port: 0)
        do { try await body(port) } catch {
            await server.stop()
            try? await group.shutdownGracefully()
            throw error
        }
        await server.stop()
        try? await group.shutdownGracefully()
    }

    func dig(_ port: Int, _ arguments: String...) async throws -> String {
        try await run("dig", ["@127.0.0.1", "-p", String(port), "+time=2", "+tries=1"] + arguments).output
    }

    @Test func answersOverUDPAndTCPWithTheRightFlagsAndCodes() async throws {
        try await withServer { port in
            #expect(try await dig(port, "+short", "example.com", "A") == "127.0.0.1\n")
            #expect(try await dig(port, "+short", "+tcp", "EXAMPLE.com", "A") == "127.0.0.1\n")
            let chased = try await dig(port, "+short", "www.example.com", "A")
            #expect(chased == "example.com.\n127.0.0.1\n")

            let answer = try await dig(port, "example.com", "A")
            #expect(answer.contains("status: NOERROR"))
            #expect(answer.contains("flags: qr aa rd;"))
            let missing = try await dig(port, "nope.example.com", "A")
            #expect(missing.contains("status: NXDOMAIN"))
            #expect(missing.contains("AUTHORITY: 1"))  // the SOA, for negative caching
            let nodata = try await dig(port, "example.com", "MX")
            #expect(nodata.contains("status: NOERROR") && nodata.contains("ANSWER: 0") && nodata.contains("AUTHORITY: 1"))
            #expect(try await dig(port, "example.org", "A").contains("status: REFUSED"))
        }
    }

    @Test func truncatesOverUDPAndTheClientRetriesOverTCP() async throws {
        try await withServer { port in
            let truncated = try await dig(port, "+noedns", "+ignore", "big.example.com", "TXT")
            #expect(truncated.contains(" tc"))
            #expect(truncated.contains("ANSWER: 0"))
            // dig retries over TCP by itself when it sees TC.
            let full = try await dig(port, "+noedns", "big.example.com", "TXT")
            #expect(full.contains("ANSWER: 1") && !full.contains("flags: qr tc"))
            // With EDNS0 a 1232-byte payload fits the answer over UDP, and the OPT is echoed.
            let edns = try await dig(port, "+bufsize=1232", "+ignore", "big.example.com", "TXT")
            #expect(edns.contains("ANSWER: 1") && edns.contains("OPT PSEUDOSECTION") && !edns.contains(" tc"))
        }
    }

    @Test func survivesGarbageAndStillAnswers() async throws {
        try await withServer { port in
            Self.sendGarbage(to: port)
            let answer = try await dig(port, "+short", "example.com", "A")
            #expect(answer == "127.0.0.1\n")
        }
    }

    /// Random datagrams of awkward sizes, some with the query bit pattern of a real header.
    static func sendGarbage(to port: Int) {
            let socket = Glibc.socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
            defer { close(socket) }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            var random = SystemRandomNumberGenerator()
            for length in [0, 1, 11, 12, 13, 40, 512, 1400] {
                var bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &random) }
                if length >= 12 { bytes[2] &= 0x7F }  // a query, not a response
                _ = withUnsafePointer(to: &address) { pointer in
                    pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        sendto(socket, bytes, bytes.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                    }
                }
            }
    }
}
