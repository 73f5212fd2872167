/// The EDNS(0) pseudo-record (RFC 6891 §6.1), lifted out of the additional section.
///
/// The EXTENDED-RCODE field is not stored here: it is folded into `DNSMessage.rcode` when
/// decoding and split back out when encoding, so the response code has a single home.
public struct EDNS: Hashable, Sendable {
    /// The requestor's UDP payload size (the OPT CLASS field). Values below 512 are to be treated
    /// as 512 (RFC 6891 §6.2.5); that is the caller's policy, the value is kept as received.
    public var udpPayloadSize: UInt16
    public var version: UInt8
    /// The DO bit (RFC 3225).
    public var dnssecOK: Bool
    /// The remaining 15 Z flag bits, kept so a decode → encode round trip is lossless.
    public var z: UInt16
    /// Options in the order received, kept raw (RFC 6891 §6.1.2).
    public var options: [EDNSOption]

    public init(udpPayloadSize: UInt16 = 1232, version: UInt8 = 0, dnssecOK: Bool = false, z: UInt16 = 0, options: [EDNSOption] = []) {
        self.udpPayloadSize = udpPayloadSize
        self.version = version
        self.dnssecOK = dnssecOK
        self.z = z & 0x7FFF
        self.options = options
    }
}

/// One `{OPTION-CODE, OPTION-LENGTH, OPTION-DATA}` triple (RFC 6891 §6.1.2).
public struct EDNSOption: Hashable, Sendable {
    public var code: UInt16
    public var data: [UInt8]

    public init(code: UInt16, data: [UInt8]) {
        self.code = code
        self.data = data
    }
}
