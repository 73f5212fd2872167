import Foundation
import GantryHandover
import NIOConcurrencyHelpers

/// Hands out loopback addresses (all of 127.0.0.0/8 is loopback on Linux), so every pod can
/// listen on the same port at an address of its own, as pods do in a cluster.
///
/// Several gantry instances may run on one machine (tests do), so each claims whole /24 blocks
/// for itself: a block is its own while it holds an exclusive `flock` on the block's lock file,
/// which the kernel releases when the process ends, however it ends. Within its blocks an
/// address is handed out only if nothing else listens on it at that port.
///
/// Pods outlive a gantry that is killed, and the next gantry on the same state directory takes
/// them over at their addresses, so a block stays its owner's after the lock is gone: the lock
/// file names the owner (the state directory), and a gantry claiming a new block takes one
/// named for another owner only when no other is free. A clean stop, with every pod gone,
/// clears the name (``disown()``).
public final class LoopbackAddresses: Sendable {
    /// A claimed /24: its third octet, the descriptor that holds its lock, and that
    /// descriptor's token in ``Handover``.
    private struct Block {
        let octet: Int
        let lock: Int32
        let token: Int
    }

    private struct State {
        var inUse: Set<String> = []
        var blocks: [Block] = []
    }

    private let state = NIOLockedValueBox(State())
    private let octets: ClosedRange<Int>
    private let owner: String?
    private let lockDirectory: String

    /// - Parameters:
    ///   - blocks: third octets this allocator may claim, e.g. `100...199` for pods.
    ///   - owner: what the addresses' users outlive this process for (the pods' state
    ///     directory), written in each block's lock file; nil when nothing outlives it.
    public init(blocks: ClosedRange<Int>, owner: String? = nil, lockDirectory: String = NSTemporaryDirectory() + "gantry-loopback") {
        self.octets = blocks
        self.owner = owner
        self.lockDirectory = lockDirectory
    }

    deinit {
        state.withLockedValue { state in
            for block in state.blocks {
                Handover.shared.forget(block.token)
                close(block.lock)
            }
        }
    }

    /// A free address for `port`, claiming another block when the ones held are full.
    public func allocate(port: Int) -> String? {
        state.withLockedValue { state in
            for block in state.blocks {
                if let address = free(in: block.octet, port: port, inUse: state.inUse) {
                    state.inUse.insert(address)
                    return address
                }
            }
            while let block = claimBlock(excluding: Set(state.blocks.map(\.octet))) {
                state.blocks.append(block)
                if let address = free(in: block.octet, port: port, inUse: state.inUse) {
                    state.inUse.insert(address)
                    return address
                }
            }
            return nil
        }
    }

    /// Takes `address` as in use: the address of a pod or cluster IP taken over from an earlier
    /// gantry. False when it is not in this allocator's blocks or its block is another running
    /// gantry's.
    public func claim(_ address: String) -> Bool {
        let parts = address.split(separator: ".")
        guard parts.count == 4, parts[0] == "127", parts[1] == "0", let octet = Int(parts[2]), octets.contains(octet) else { return false }
        return state.withLockedValue { state in
            if !state.blocks.contains(where: { $0.octet == octet }) {
                guard let block = claim(octet) else { return false }
                state.blocks.append(block)
            }
            state.inUse.insert(address)
            return true
        }
    }

    public func release(_ address: String) {
        _ = state.withLockedValue { $0.inUse.remove(address) }
    }

    /// Nothing uses this allocator's addresses any more (every pod has stopped): its blocks
    /// stop being kept for its owner's next gantry.
    public func disown() {
        state.withLockedValue { state in
            for block in state.blocks { _ = ftruncate(block.lock, 0) }
        }
    }

    private func free(in octet: Int, port: Int, inUse: Set<String>) -> String? {
        for last in 1...254 {
            let address = "127.0.\(octet).\(last)"
            if !inUse.contains(address), Self.isFree(address, port: port) { return address }
        }
        return nil
    }

    /// A free block: first one no other owner left its pods in, then any.
    private func claimBlock(excluding held: Set<Int>) -> Block? {
        for octet in octets where !held.contains(octet) {
            if let block = claim(octet, unlessOwnedByAnother: true) { return block }
        }
        for octet in octets where !held.contains(octet) {
            if let block = claim(octet) { return block }
        }
        return nil
    }

    /// A block's lock: the one the gantry this one takes over from handed over, or a new
    /// `flock`. Held in ``Handover`` so that the next gantry can take it over in turn: a lock
    /// handed over is the same open file, so the block stays held while either process runs.
    private func claim(_ octet: Int, unlessOwnedByAnother: Bool = false) -> Block? {
        let name = "lock/127.0.\(octet)"
        if let inherited = Handover.shared.take(name) {
            return Block(octet: octet, lock: inherited, token: Handover.shared.hold(name, inherited))
        }
        try? FileManager.default.createDirectory(atPath: lockDirectory, withIntermediateDirectories: true)
        let descriptor = open("\(lockDirectory)/127.0.\(octet).lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { return nil }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            close(descriptor)
            return nil
        }
        if let owner {
            let recorded = Self.recordedOwner(descriptor)
            if unlessOwnedByAnother, let recorded, recorded != owner {
                close(descriptor)
                return nil
            }
            if recorded != owner { Self.record(owner, in: descriptor) }
        }
        return Block(octet: octet, lock: descriptor, token: Handover.shared.hold(name, descriptor))
    }

    /// The owner a lock file names; nil when it names none.
    private static func recordedOwner(_ descriptor: Int32) -> String? {
        var bytes = [UInt8](repeating: 0, count: 4096)
        let count = pread(descriptor, &bytes, bytes.count, 0)
        guard count > 0 else { return nil }
        return String(decoding: bytes[..<count], as: UTF8.self)
    }

    private static func record(_ owner: String, in descriptor: Int32) {
        _ = ftruncate(descriptor, 0)
        let bytes = Array(owner.utf8)
        _ = pwrite(descriptor, bytes, bytes.count, 0)
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
