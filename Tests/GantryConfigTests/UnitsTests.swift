import Testing

@testable import GantryConfig

struct UnitsTests {
    @Test(arguments: [
        ("250ms", Duration.milliseconds(250)),
        ("10s", .seconds(10)),
        ("5m", .seconds(300)),
        ("1h", .seconds(3600)),
        ("1m30s", .seconds(90)),
        ("1.5s", .milliseconds(1500)),
        ("100us", .microseconds(100)),
    ])
    func durations(text: String, value: Duration) {
        #expect(DurationSpec.parse(text)?.duration == value)
    }

    @Test(arguments: ["5", "", "s", "10 s", "-1s", "1d", ".5s", "1.s5", "10sec", "1e3s"])
    func invalidDurations(text: String) {
        #expect(DurationSpec.parse(text) == nil)
    }

    @Test(arguments: [
        ("16KiB", 16384), ("10MiB", 10_485_760), ("1GiB", 1_073_741_824), ("500KB", 500_000), ("128Mi", 134_217_728),
        ("1024", 1024), ("2B", 2), ("1G", 1_000_000_000),
    ])
    func sizes(text: String, bytes: Int) {
        #expect(ByteSize.parse(text)?.bytes == bytes)
    }

    @Test(arguments: ["", "KiB", "1.5MiB", "10 MiB", "10mib", "-1KiB", "99999999999999999999GiB"])
    func invalidSizes(text: String) {
        #expect(ByteSize.parse(text) == nil)
    }

    @Test(arguments: [("250m", 250), ("1", 1000), ("0.5", 500), ("2", 2000), ("1.25", 1250)])
    func cpu(text: String, millicores: Int) {
        #expect(CPUQuantity.parse(text)?.millicores == millicores)
    }

    @Test(arguments: ["", "0", "0m", "m", "1.0005", "-1", "abc", "250M"])
    func invalidCPU(text: String) {
        #expect(CPUQuantity.parse(text) == nil)
    }

    @Test func suggestions() {
        #expect(Suggestion.closest(to: "servce", among: ["services", "service", "gateway"]) == "service")
        #expect(Suggestion.closest(to: "app-svc", among: ["app-service", "auth-service"]) == "app-service")
        #expect(Suggestion.closest(to: "zzz", among: ["services", "gateway"]) == nil)
        #expect(Suggestion.editDistance(Array("adress".utf8), Array("address".utf8)) == 1)
        #expect(Suggestion.editDistance(Array("porxy".utf8), Array("proxy".utf8)) == 1)
    }
}
