import Foundation
import GantryConfig
import GantryCore
import GantryDNS
import NIOCore
import NIOEmbedded

@testable import GantryProxy

/// The preface sniffer says HTTP/2 exactly for inputs that start with the client preface, and
/// hands on every byte either way, however the reads cut them.
enum PrefaceFuzz {
    static let preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

    static func run(_ bytes: [UInt8]) {
        var decision: Bool?
        let channel = EmbeddedChannel()
        let sniffer = HTTP2PrefaceSniffer { http2, _ in decision = http2 }
        try? channel.pipeline.syncOperations.addHandler(sniffer)
        let cut = bytes.first.map { Int($0) % max(1, bytes.count) } ?? 0
        for piece in [bytes[..<cut], bytes[cut...]] where !piece.isEmpty {
            try? channel.writeInbound(ByteBuffer(bytes: Array(piece)))
        }
        var passed: [UInt8] = []
        while let buffer = try? channel.readInbound(as: ByteBuffer.self) { passed += Array(buffer.readableBytesView) }
        let isPrefix = bytes.count < preface.count && bytes.elementsEqual(preface.prefix(bytes.count))
        if isPrefix {
            require(decision == nil, "decided on a prefix of the preface")
        } else {
            require(decision == bytes.starts(with: preface), "said \(String(describing: decision)) for \(bytes.prefix(24))")
            require(passed == bytes, "bytes lost or changed: \(passed.count) of \(bytes.count)")
        }
        _ = try? channel.finish()
    }
}

/// A message the DNS reader takes, written again by gantry's writer, reads back equal.
enum DNSFuzz {
    static func run(_ bytes: [UInt8]) {
        guard let message = try? DNSMessage.decode(bytes) else { return }
        let written = message.encode()
        guard let again = try? DNSMessage.decode(written) else {
            require(false, "gantry's own encoding of a message it read does not read: \(written)")
            return
        }
        require(again == message, "the message changed: \(message) vs \(again)")
    }
}

/// Any token is judged without a crash; base64url reads back what it writes.
enum JWSFuzz {
    static let keys = [JWTKey.hmac(secret: Data("fuzzing-secret-0123456789abcdefghij".utf8), id: "k1")]

    static func run(_ bytes: [UInt8]) {
        let text = String(decoding: bytes, as: UTF8.self)
        _ = JWTVerifier.verify(text, keys: keys, rules: JWTRules(issuer: "fuzz"), now: Date(timeIntervalSince1970: 1_800_000_000))
        if let decoded = Base64URL.decode(text) {
            require(Base64URL.decode(Base64URL.encode(decoded)) == decoded, "base64url does not read back what it wrote")
        }
        _ = try? JWKSet.keys(from: Data(bytes))
    }
}

/// Any JSON is read, taken as a schema, and checked against a schema, without a crash (and
/// the patterns in a schema run in linear time, so a hostile one cannot hang the run).
enum JSONFuzz {
    static let schema = try! JSONSchema(
        json: Data(
            #"{"type":"object","required":["name"],"properties":{"name":{"type":"string","pattern":"^[a-z]+(-[a-z]+)*$","maxLength":40},"n":{"type":"integer","minimum":0}}}"#
                .utf8))

    static func run(_ bytes: [UInt8]) {
        let data = Data(bytes)
        if let value = try? JSONDecoder().decode(JSONValue.self, from: data) {
            _ = schema.violation(of: value)
            if let own = try? JSONSchema(json: data) { _ = own.violation(of: value) }
        }
    }
}

/// Any text is a configuration that loads or is refused with problems, never a crash.
enum ConfigFuzz {
    static func run(_ bytes: [UInt8]) {
        guard let text = String(bytes: bytes, encoding: .utf8) else { return }
        switch ConfigLoader.load(yaml: text, file: "/nonexistent/fuzz.yaml", coreCount: 2) {
        case .success: break
        case .failure(let error): require(!error.issues.isEmpty, "a refusal without a problem")
        }
    }
}
