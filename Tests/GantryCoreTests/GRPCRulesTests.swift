import Testing

@testable import GantryCore

/// What gantry reads and writes of gRPC: which requests are calls, deadlines, status codes for
/// its own answers, messages, and the health service's messages.
@Suite struct GRPCRulesTests {
    @Test func callsAreKnownByTheirContentType() {
        #expect(GRPC.isCall(contentType: "application/grpc"))
        #expect(GRPC.isCall(contentType: "application/grpc+proto"))
        #expect(GRPC.isCall(contentType: "Application/GRPC; charset=utf-8"))
        #expect(!GRPC.isCall(contentType: "application/grpc-web"))
        #expect(!GRPC.isCall(contentType: "application/grpcx"))
        #expect(!GRPC.isCall(contentType: "application/json"))
    }

    @Test func timeoutsReadEveryUnitAndRefuseTheRest() {
        #expect(GRPC.timeoutNanoseconds("1H") == 3_600_000_000_000)
        #expect(GRPC.timeoutNanoseconds("2M") == 120_000_000_000)
        #expect(GRPC.timeoutNanoseconds("3S") == 3_000_000_000)
        #expect(GRPC.timeoutNanoseconds("250m") == 250_000_000)
        #expect(GRPC.timeoutNanoseconds("99999999u") == 99_999_999_000)
        #expect(GRPC.timeoutNanoseconds("7n") == 7)
        for bad in ["", "S", "1", "123456789S", "1s", "-1S", "1.5S", " 1S"] {
            #expect(GRPC.timeoutNanoseconds(bad) == nil, "\(bad)")
        }
    }

    @Test func gantrysAnswersMapToGRPCStatuses() {
        #expect(GRPC.Status(httpStatus: 401) == .unauthenticated)
        #expect(GRPC.Status(httpStatus: 403) == .permissionDenied)
        #expect(GRPC.Status(httpStatus: 404) == .unimplemented)
        #expect(GRPC.Status(httpStatus: 429) == .resourceExhausted)
        #expect(GRPC.Status(httpStatus: 413) == .resourceExhausted)
        #expect(GRPC.Status(httpStatus: 502) == .unavailable)
        #expect(GRPC.Status(httpStatus: 503) == .unavailable)
        #expect(GRPC.Status(httpStatus: 504) == .deadlineExceeded)
        #expect(GRPC.Status(httpStatus: 400) == .internal)
    }

    @Test func messagesArePercentEncoded() {
        #expect(GRPC.encodeMessage("plain text") == "plain text")
        #expect(GRPC.encodeMessage("100% sure") == "100%25 sure")
        #expect(GRPC.encodeMessage("line\nbreak") == "line%0Abreak")
        #expect(GRPC.encodeMessage("café") == "caf%C3%A9")
    }

    @Test func healthMessagesAreWrittenAndRead() {
        #expect(GRPC.healthCheckRequest(service: "") == [0, 0, 0, 0, 0])
        #expect(GRPC.healthCheckRequest(service: "echo") == [0, 0, 0, 0, 6, 0x0A, 4] + Array("echo".utf8))
        #expect(GRPC.servingStatus(inResponseBody: [0, 0, 0, 0, 2, 0x08, 1]) == GRPC.serving)
        #expect(GRPC.servingStatus(inResponseBody: [0, 0, 0, 0, 2, 0x08, 2]) == 2)
        #expect(GRPC.servingStatus(inResponseBody: [0, 0, 0, 0, 0]) == 0)  // proto3's default: UNKNOWN
        // Unknown fields are skipped; what does not parse is nil.
        #expect(GRPC.servingStatus(inResponseBody: [0, 0, 0, 0, 5, 0x12, 1, 0x41, 0x08, 1]) == 1)
        #expect(GRPC.servingStatus(inResponseBody: [0, 0, 0, 0, 3, 0x08, 1]) == nil)
        #expect(GRPC.servingStatus(inResponseBody: [1, 0, 0, 0, 2, 0x08, 1]) == nil)
        #expect(GRPC.servingStatus(inResponseBody: [0, 0, 0, 0, 2, 0x08, 0x80]) == nil)
    }
}
