import NIOCore
import NIOHTTP1

@testable import GantryProxy

/// What a parser made of some bytes, comparable: each part as text, or the error.
private func describe(_ part: HTTPRequestParser.Part) -> String {
    switch part {
    case .head(let head, let keepAlive):
        return "head \(head.method) \(head.uri) \(head.version) \(head.headers.map { "\($0.name)=\($0.value)" }) \(keepAlive)"
    case .body(let buffer): return "body \(buffer.readableBytes)"
    case .end(let trailers): return "end \(trailers.map { "\($0.map { "\($0.name)=\($0.value)" })" } ?? "-")"
    }
}

/// Body parts may be cut differently by different reads: their bytes are added up.
private func merged(_ parts: [String]) -> [String] {
    var out: [String] = []
    var body = 0
    for part in parts {
        if part.hasPrefix("body ") {
            body += Int(part.dropFirst(5)) ?? 0
            continue
        }
        if body > 0 { out.append("body \(body)") }
        body = 0
        out.append(part)
    }
    if body > 0 { out.append("body \(body)") }
    return out
}

enum HTTP1RequestFuzz {
    /// Parts the request parser makes of `pieces`, fed one after another, or the error.
    static func parse(_ pieces: [[UInt8]]) -> (parts: [String], heads: [HTTPRequestHead], failed: Bool) {
        var parser = HTTPRequestParser(maxHeadSize: 8192, maxHeaderCount: 100)
        var parts: [String] = []
        var heads: [HTTPRequestHead] = []
        for piece in pieces {
            do {
                try parser.parse(ByteBuffer(bytes: piece)) { part in
                    parts.append(describe(part))
                    if case .head(let head, _) = part { heads.append(head.nioHead) }
                }
                // The bytes held after a request that asks to switch protocols are read as
                // requests, as a connection does when the answer does not switch.
                while parser.holdsAfterUpgrade {
                    parser.stopHolding()
                    try parser.parse(ByteBuffer()) { part in
                        parts.append(describe(part))
                        if case .head(let head, _) = part { heads.append(head.nioHead) }
                    }
                }
            } catch {
                return (parts, heads, true)
            }
        }
        return (parts, heads, false)
    }

    /// The bytes in one read, and cut in two at a place the input chooses, make the same parts
    /// (or the same refusal: a request either parses or is refused, whatever the reads); and a
    /// head gantry parsed, written again as gantry writes it upstream, parses to the same head.
    static func run(_ bytes: [UInt8]) {
        let whole = parse([bytes])
        if let cut = bytes.first.map({ Int($0) % max(1, bytes.count) }), bytes.count > 1 {
            let split = parse([Array(bytes[..<cut]), Array(bytes[cut...])])
            require(split.failed == whole.failed, "one read and two reads disagree on refusing: \(whole.failed) vs \(split.failed)")
            require(merged(split.parts) == merged(whole.parts), "parts differ: \(whole.parts) vs \(split.parts)")
        }
        for head in whole.heads.prefix(4) {
            var writer = HTTP1MessageWriter()
            writer.writeHead(head, allocator: ByteBufferAllocator())
            guard let written = writer.take() else { continue }
            let again = parse([Array(written.readableBytesView)])
            require(!again.failed, "gantry's own head does not parse: \(String(decoding: written.readableBytesView, as: UTF8.self))")
            require(again.heads.first?.method == head.method && again.heads.first?.uri == head.uri, "the head changed: \(head) vs \(again.heads)")
            require(
                again.heads.first.map { Array($0.headers.map { "\($0.name): \($0.value)" }) } == Array(head.headers.map { "\($0.name): \($0.value)" }),
                "the fields changed: \(head.headers) vs \(again.heads.first?.headers ?? [:])")
        }
    }
}

enum HTTP1ResponseFuzz {
    static func parse(_ pieces: [[UInt8]], method: HTTPMethod) -> (parts: [String], failed: Bool) {
        var parser = HTTPResponseParser()
        var parts: [String] = []
        // gantry sends one request at a time: after a response ends, the connection reads
        // nothing more for it (UpstreamHandler closes it when bytes follow).
        var ended = false
        for piece in pieces where !ended {
            do {
                try parser.parse(ByteBuffer(bytes: piece), method: method) { part in
                    switch part {
                    case .head(let head, let keepAlive): parts.append("head \(head.code) \(head.headers.map { "\($0.name)=\($0.value)" }) \(keepAlive)")
                    case .body(let buffer): parts.append("body \(buffer.readableBytes)")
                    case .end(let trailers, _):
                        parts.append("end \(trailers?.count ?? -1)")
                        ended = true
                    case .switched:
                        parts.append("switched")
                        ended = true
                    }
                    return true
                }
            } catch {
                return (parts, true)
            }
        }
        if !ended, parser.endOfInput() { parts.append("end at close") }
        return (parts, false)
    }

    /// An upstream's bytes make the same response however the reads cut them.
    static func run(_ bytes: [UInt8]) {
        let method: HTTPMethod = bytes.first.map { $0 & 1 == 0 } == true ? .GET : .HEAD
        let whole = parse([bytes], method: method)
        guard bytes.count > 1, let first = bytes.first else { return }
        let cut = Int(first) % bytes.count
        let split = parse([Array(bytes[..<cut]), Array(bytes[cut...])], method: method)
        require(split.failed == whole.failed, "one read and two reads disagree on refusing")
        require(merged(split.parts) == merged(whole.parts), "parts differ: \(whole.parts) vs \(split.parts)")
    }
}
