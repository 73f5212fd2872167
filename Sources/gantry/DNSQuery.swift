import GantryCore
import GantryDNS

#if canImport(Glibc)
import Glibc
#endif

/// One A query over UDP to a given server, encoded and decoded with GantryDNS: what
/// `gantry trace` shows of the DNS step (the system resolver cannot be pointed at a port).
enum DNSQuery {
    struct Answer {
        let addresses: [String]
        let chain: [String]
        let authoritative: Bool
        let rcode: DNSResponseCode
    }

    struct Failure: Error {}

    static func a(_ host: String, server: String, port: Int, timeoutMilliseconds: Int = 2000) throws -> Answer {
        let id = UInt16.random(in: 0...UInt16.max)
        let query = DNSMessage(id: id, flags: DNSHeaderFlags(rd: true), questions: [DNSQuestion(name: try DNSName(host), type: .a)])
        let socket = Glibc.socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard socket >= 0 else { throw Failure() }
        defer { close(socket) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        guard inet_pton(AF_INET, server, &address.sin_addr) == 1 else { throw Failure() }
        let bytes = query.encode()
        let sent = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                sendto(socket, bytes, bytes.count, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard sent == bytes.count else { throw Failure() }
        var poll = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
        guard Glibc.poll(&poll, 1, Int32(timeoutMilliseconds)) == 1 else { throw Failure() }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = recv(socket, &buffer, buffer.count, 0)
        guard count > 0, let reply = try? DNSMessage.decode(Array(buffer[..<count])), reply.id == id else { throw Failure() }
        var addresses: [String] = []
        var chain: [String] = []
        for record in reply.answers {
            switch record.data {
            case .a(let v4): addresses.append(v4.description)
            case .cname(let target): chain.append(target.description)
            default: break
            }
        }
        return Answer(addresses: addresses, chain: chain, authoritative: reply.flags.aa, rcode: reply.rcode)
    }
}
