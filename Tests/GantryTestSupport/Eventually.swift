import Foundation

/// Polls a condition until it holds or the deadline passes: the only way tests wait.
public func eventually(
    timeout: Duration = .seconds(10), every interval: Duration = .milliseconds(20), _ condition: () async throws -> Bool
) async rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: interval)
    }
    return try await condition()
}

/// A request as bytes, with CRLF line ends.
public func request(_ lines: String...) -> String {
    lines.joined(separator: "\r\n") + "\r\n\r\n"
}
