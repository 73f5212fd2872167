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
}
