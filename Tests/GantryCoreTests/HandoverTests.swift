import Testing

@testable import GantryHandover

#if canImport(Glibc)
import Glibc
#endif

/// What a gantry taking over reuses: a listening socket inherited under the name it is asked
/// for, when it is bound where the configuration wants it; otherwise a new one.
struct HandoverTests {
    @Test func anInheritedSocketIsReusedWhereItIsBound() throws {
        let old = Handover()
        let first = try old.listeningSocket(named: "listener/http", host: "127.0.0.1", port: 0, kind: .stream)
        let port = try #require(Handover.localAddress(of: first.descriptor)?.port)
        #expect(old.held == [Handover.Descriptor(name: "listener/http", descriptor: first.descriptor)])

        let new = Handover()
        new.inherit([Handover.Descriptor(name: "listener/http", descriptor: dup(first.descriptor))])
        #expect(new.inheritedAddress("listener/http")?.port == port)
        // Asked for by name and the same port (or any, with port 0): the very socket.
        let taken = try new.listeningSocket(named: "listener/http", host: "127.0.0.1", port: port, kind: .stream)
        #expect(Handover.localAddress(of: taken.descriptor)?.port == port)
        #expect(new.take("listener/http") == nil, "taken once")
        new.forget(taken.token)
        #expect(new.held.isEmpty)
        close(taken.descriptor)
        old.discard(first)
    }

    @Test func aSocketTheNewConfigurationMovedIsClosedAndBoundAnew() throws {
        let old = Handover()
        let first = try old.listeningSocket(named: "dns/udp", host: "127.0.0.1", port: 0, kind: .datagram)
        let port = try #require(Handover.localAddress(of: first.descriptor)?.port)
        let new = Handover()
        new.inherit([Handover.Descriptor(name: "dns/udp", descriptor: dup(first.descriptor))])
        old.discard(first)
        // The configuration now wants another address: a new socket, not the inherited one.
        let moved = try new.listeningSocket(named: "dns/udp", host: "127.0.0.2", port: 0, kind: .datagram)
        #expect(Handover.localAddress(of: moved.descriptor)?.host == "127.0.0.2")
        // The inherited one is closed: its address is free again.
        let fresh = Handover()
        let again = try fresh.listeningSocket(named: "dns/udp", host: "127.0.0.1", port: port, kind: .datagram)
        new.discard(moved)
        fresh.discard(again)
    }

    @Test func inheritedSocketsNobodyTookAreClosed() throws {
        let old = Handover()
        let first = try old.listeningSocket(named: "listener/gone", host: "127.0.0.1", port: 0, kind: .stream)
        let port = try #require(Handover.localAddress(of: first.descriptor)?.port)
        let new = Handover()
        new.inherit([Handover.Descriptor(name: "listener/gone", descriptor: dup(first.descriptor))])
        old.discard(first)
        #expect(new.closeUnclaimed() == ["listener/gone"])
        // Closed: its address is free again.
        let fresh = Handover()
        fresh.discard(try fresh.listeningSocket(named: "listener/gone", host: "127.0.0.1", port: port, kind: .stream))
    }

    @Test func aBusyAddressIsAClearError() throws {
        let holder = Handover()
        let first = try holder.listeningSocket(named: "a", host: "127.0.0.1", port: 0, kind: .stream)
        let port = try #require(Handover.localAddress(of: first.descriptor)?.port)
        #expect {
            try Handover().listeningSocket(named: "b", host: "127.0.0.1", port: port, kind: .stream)
        } throws: { error in
            (error as? SocketError)?.code == EADDRINUSE && "\(error)" == "bind: address already in use"
        }
        holder.discard(first)
    }
}
