import GantryCore
import NIOHPACK
import NIOHTTP1
import Testing

@testable import GantryProxy

/// Header blocks made from the exchange's fields: lowercase names, no connection-specific
/// field (RFC 9113 §8.2.2), pseudo-fields first.
@Suite struct HTTP2FieldsTests {
    @Test func connectionSpecificFieldsAreExactlyTheHopByHopOnesHostAndHTTP2Settings() {
        for name in HopByHop.fields.union(["host", "http2-settings"]) {
            #expect(HTTP2Fields.isConnectionSpecific(name), "\(name)")
        }
        for name in ["tes", "hosts", "upgrades", "content-type", "x-upgrade", "connections", "grpc-status", "trailers"] {
            #expect(!HTTP2Fields.isConnectionSpecific(name), "\(name)")
        }
    }

    @Test func aBlockHasItsPseudoFieldsFirstAndLowercaseNames() {
        let headers: HTTPHeaders = [
            "Host": "example.com", "Content-Type": "application/grpc", "Connection": "keep-alive", "TE": "trailers", "x-id": "7",
            "Transfer-Encoding": "chunked",
        ]
        let block = HTTP2Fields.block(pseudo: [":status": "200"], headers)
        #expect(block.map(\.name) == [":status", "content-type", "x-id"])
        #expect(block.first(name: "content-type") == "application/grpc")
        let back = HTTP2Fields.fields(of: block)
        #expect(back.map(\.name) == ["content-type", "x-id"])
    }

    @Test func fieldsNewOnEveryMessageAreNotIndexedAndCredentialsNever() {
        let headers: HTTPHeaders = ["x-request-id": "1", "Authorization": "Bearer x", "content-type": "text/plain"]
        let block = HTTP2Fields.block(pseudo: [":status": "200"], headers)
        let indexing = Dictionary(uniqueKeysWithValues: block.map { ($0.name, $0.indexable) })
        #expect(indexing["x-request-id"] == .nonIndexable)
        #expect(indexing["authorization"] == .neverIndexed)
        #expect(indexing["content-type"] == .indexable)
    }

    /// An endpoint's response blocks are checked here (NIO does not, on upstream connections)
    /// by RFC 9113 §8.2 and §8.3's rules: each broken block below is refused, the good ones pass.
    @Test func anEndpointsResponseBlockKeepsRFC9113sRules() {
        func block(_ fields: [(String, String)]) -> HPACKHeaders { HPACKHeaders(fields) }
        let good = block([(":status", "200"), ("content-type", "application/grpc"), ("te", "trailers"), ("trailer", "grpc-status"), ("x-a", "b\tc")])
        #expect(HTTP2Fields.isValidResponse(good, trailers: false))
        #expect(HTTP2Fields.isValidResponse(block([("grpc-status", "0"), ("grpc-message", "")]), trailers: true))
        let broken: [(String, [(String, String)], Bool)] = [
            ("no :status", [("content-type", "text/plain")], false),
            ("an uppercase name", [(":status", "200"), ("Content-Type", "text/plain")], false),
            ("a name that is no token", [(":status", "200"), ("x a", "1")], false),
            ("an empty name", [(":status", "200"), ("", "1")], false),
            ("a CR in a value", [(":status", "200"), ("x-a", "1\r\nset-cookie: x")], false),
            ("a NUL in a value", [(":status", "200"), ("x-a", "1\u{0}")], false),
            ("a connection-specific field", [(":status", "200"), ("transfer-encoding", "chunked")], false),
            ("te other than trailers", [(":status", "200"), ("te", "gzip")], false),
            ("a second :status", [(":status", "200"), (":status", "204")], false),
            ("a request's pseudo-field", [(":status", "200"), (":path", "/")], false),
            ("a pseudo-field after a field", [("x-a", "1"), (":status", "200")], false),
            ("a pseudo-field in trailers", [(":status", "200")], true),
        ]
        for (what, fields, trailers) in broken {
            #expect(!HTTP2Fields.isValidResponse(block(fields), trailers: trailers), "\(what)")
        }
    }
}
