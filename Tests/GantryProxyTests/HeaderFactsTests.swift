import NIOHTTP1
import Testing

@testable import GantryProxy

struct HeaderFactsTests {
    @Test func learnsFramingAndForwardingFactsInOnePass() {
        let facts = HeaderFacts(
            HTTPHeaders([
                ("HOST", "example.com"), ("Content-Length", "5"), ("content-length", "5"), ("Expect", "100-Continue"),
                ("X-Forwarded-For", "10.0.0.1"), ("x-request-id", "abc"), ("X-Request-ID", "second"),
            ]))
        #expect(facts.hostCount == 1)
        #expect(facts.host == "example.com")
        #expect(facts.contentLengthCount == 2)
        #expect(!facts.contentLengthsDiffer)
        #expect(facts.expectsContinue)
        #expect(facts.forwardedForCount == 1)
        #expect(facts.requestID == "abc")
        #expect(!facts.hasHopByHop)
        guard case .contentLength(5) = Framing(facts) else {
            Issue.record("expected Content-Length framing")
            return
        }
    }

    @Test(arguments: [
        ([("Content-Length", "5"), ("Content-Length", "6")], "Content-Length must be one decimal number"),
        ([("Content-Length", "+5")], "Content-Length must be one decimal number"),
        ([("Content-Length", "")], "Content-Length must be one decimal number"),
        ([("Transfer-Encoding", "chunked"), ("Content-Length", "5")], "a request must not have both Content-Length and Transfer-Encoding"),
        ([("Transfer-Encoding", "chunked, gzip")], "Transfer-Encoding must end with chunked, once"),
        ([("Transfer-Encoding", "chunked"), ("Transfer-Encoding", "Chunked")], "Transfer-Encoding must end with chunked, once"),
    ])
    func rejectsAmbiguousFraming(headers: [(String, String)], why: String) {
        guard case .invalid(let reason) = Framing(HeaderFacts(HTTPHeaders(headers))) else {
            Issue.record("accepted \(headers)")
            return
        }
        #expect(reason == why)
    }

    /// Chunked alone, in any case, is chunked; with another coding before it the request is
    /// answered 501, since gantry would forward the body still coded with nothing saying so.
    @Test func onlyChunkedIsATransferCodingGantryForwards() {
        #expect(Framing(HeaderFacts(HTTPHeaders([("transfer-encoding", " CHUNKED ")]))).isChunked)
        let layered = Framing(HeaderFacts(HTTPHeaders([("Transfer-Encoding", "gzip"), ("transfer-encoding", "chunked")])))
        guard case .unsupportedCoding = layered else {
            Issue.record("gzip, chunked was \(layered)")
            return
        }
        #expect(layered.hasBody)
    }

    @Test func connectionNominatesFieldsButNotTheProxysOwn() {
        let facts = HeaderFacts(
            HTTPHeaders([("Connection", "keep-alive, X-Debug, host, X-Forwarded-For"), ("X-Debug", "1"), ("Keep-Alive", "5")]))
        #expect(facts.hasHopByHop)
        #expect(facts.nominated == ["x-debug"])
        #expect(facts.isHopByHop("x-DEBUG"))
        #expect(facts.isHopByHop("Keep-Alive"))
        #expect(facts.isHopByHop("TE"))
        #expect(!facts.isHopByHop("Host"))
        #expect(!facts.isHopByHop("X-Forwarded-For"))
        // Hop-by-hop fields without a `Connection` to name them, and a name of the same length
        // that is not one.
        #expect(HeaderFacts(HTTPHeaders([("TE", "trailers")])).hasHopByHop)
        #expect(HeaderFacts(HTTPHeaders([("Upgrade", "h2c")])).hasHopByHop)
        #expect(HeaderFacts(HTTPHeaders([("proxy-connection", "keep-alive")])).hasHopByHop)
        #expect(!HeaderFacts(HTTPHeaders([("User-Agent", "curl"), ("Referer", "x")])).hasHopByHop)
    }
}
