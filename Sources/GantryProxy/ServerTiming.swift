import Foundation

/// `Server-Timing` (W3C) descriptions, as quoted strings (durations use `millisecondsText`).
enum ServerTiming {
    /// A quoted-string (RFC 9110 §5.6.4): quotes and backslashes escaped.
    static func quote(_ text: String) -> String {
        "\"" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }
}

