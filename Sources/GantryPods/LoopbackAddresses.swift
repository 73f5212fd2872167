import Foundation
import Synchronization

/// Hands out loopback addresses (all of 127.0.0.0/8 is loopback on Linux), so every pod can
/// listen on the same port at an address of its own, as pods do in a cluster. An address is
/// handed out only if nothing else on the machine listens on it at that port: several
/// gantry instances can run side by side.
public final class LoopbackAddresses: Sendable {
    private let inUse = Mutex<Set<String>>([])
    private let prefix: String
    private let range: ClosedRange<Int>

    /// - Parameter prefix: the first three octets, e.g. `127.0.100` for pods.
    public init(prefix: String, range: ClosedRange<Int> = 1...254) {
        self.prefix = prefix
        self.range = range
    }

    /// A free address for `port`, from the third octet's next block when the first fills.
    public func allocate(port: Int) -> String? {
        let base = prefix.split(separator: ".").map(String.init)
        guard base.count == 3, let third = Int(base[2]) else { return nil }
        return inUse.withLock { inUse in
            for block in third...min(third + 50, 255) {
                for last in range {
                    let address = "\(base[0]).\(base[1]).\(block).\(last)"
                    if !inUse.contains(address), Self.isFree(address, port: port) {
                        inUse.insert(address)
                        return address
                    }
                }
            }
            return nil
        }
    }

    public func release(_ address: String) {
        _ = inUse.withLock { $0.remove(address) }
    }

    /// Whether a TCP socket can bind `address:port` right now.
    static func isFree(_ address: String, port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var reuse: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &reuse, socklen_t(MemoryLayout<Int32>.size))
        var sin = sockaddr_in()
        sin.sin_family = sa_family_t(AF_INET)
        sin.sin_port = in_port_t(UInt16(port).bigEndian)
        guard inet_pton(AF_INET, address, &sin.sin_addr) == 1 else { return false }
        return withUnsafePointer(to: &sin) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
    }
}
