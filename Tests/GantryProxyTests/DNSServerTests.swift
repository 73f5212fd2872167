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

    func withServer(limits: DNSServer.TCPLimits = DNSServer.TCPLimits(), _ body: (Int) async throws -> Void) async throws {
        try await withServer(limits: limits) { port, _ in try await body(port) }
    }

    func withServer(limits: DNSServer.TCPLimits = DNSServer.TCPLimits(), _ body: (Int, DNSServer) async throws -> Void) async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let server = DNSServer(authority: DNSAuthority(zones: [try Self.zone()]), group: group, limits: limits)
        let port = try await server.start(host: "127.0.0.1", port: 0)
        do { try await body(port, server) } catch {
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

    /// RFC 8482: ANY over UDP gets one RRset, not the whole node (the amplification); over TCP,
    /// where the client has shown its address is its own, everything.
    @Test func anyOverUDPIsMinimalAndWholeOverTCP_RFC8482() async throws {
        try await withServer { port in
            // dig asks ANY over TCP unless told not to.
            let udp = try await dig(port, "+notcp", "+noall", "+answer", "example.com", "ANY")
            let records = { (text: String) in text.split(separator: "\n").filter { $0.contains("\tIN\t") } }
            #expect(records(udp).count == 1 && udp.contains("\tSOA\t"), "\(udp)")
            let tcp = try await dig(port, "+tcp", "+noall", "+answer", "example.com", "ANY")
            #expect(records(tcp).count == 2 && tcp.contains("\tSOA\t") && tcp.contains("\tA\t"), "\(tcp)")
        }
    }

    /// RFC 7766 §6.2.3 and §10: a TCP client that trickles its message is closed at the
    /// message deadline, an idle one at the idle timeout, and connections are capped per
    /// client; the server answers others meanwhile.
    @Test func tcpConnectionsAreBoundedInTimeAndNumber_RFC7766() async throws {
        var limits = DNSServer.TCPLimits()
        limits.messageTimeout = .milliseconds(600)
        limits.idleTimeout = .milliseconds(900)
        limits.maxConnectionsPerClient = 3
        try await withServer(limits: limits) { port, server in
            // A message of 40 bytes announced, a byte at a time every 200 ms: closed before its
            // end. Each byte comes well within the idle timeout, so only the message's own
            // deadline can close it.
            let trickle = try RawHTTPConnection(port: port)
            try trickle.send([0, 40])
            var sent = 0
            while sent < 38, (try? trickle.send([0x41])) != nil {
                sent += 1
                try await Task.sleep(for: .milliseconds(200))
                if await trickle.waitForClose(timeout: 0.01) { break }
            }
            #expect(sent < 38, "the trickling client was never closed")

            // Idle: closed without a word.
            let idle = try RawHTTPConnection(port: port)
            #expect(await idle.waitForClose(timeout: 5))

            // Three connections from one address are held; a fourth is closed at once.
            let held = try (0..<3).map { _ in try RawHTTPConnection(port: port) }
            #expect(await eventually { server.tcpConnectionCount == 3 })
            let fourth = try RawHTTPConnection(port: port)
            #expect(await fourth.waitForClose(timeout: 2))
            #expect(try await dig(port, "+short", "example.com", "A") == "127.0.0.1\n", "UDP is answered meanwhile")
            for connection in held { connection.closeNow() }
            #expect(await eventually { server.tcpConnectionCount == 0 })
            #expect(try await dig(port, "+short", "+tcp", "example.com", "A") == "127.0.0.1\n")
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
