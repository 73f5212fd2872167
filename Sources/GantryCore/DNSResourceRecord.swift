/// A resource record (RFC 1035 §3.2.1, §4.1.3). The TYPE is derived from the data so the two can
/// never disagree.
public struct DNSResourceRecord: Hashable, Sendable, CustomStringConvertible {
    public var name: DNSName
    public var dnsClass: UInt16
    public var ttl: UInt32
    public var data: DNSRecordData

    public init(name: DNSName, ttl: UInt32, data: DNSRecordData, dnsClass: UInt16 = DNSClass.internet) {
        self.name = name
        self.dnsClass = dnsClass
        self.ttl = ttl
        self.data = data
    }

    public var type: DNSRecordType { data.type }

    /// Zone-file form, e.g. `www.example.com. 300 IN A 192.0.2.1`.
    public var description: String {
        let className = dnsClass == DNSClass.internet ? "IN" : "CLASS\(dnsClass)"
        return "\(name) \(ttl) \(className) \(type) \(data)"
    }
}

/// An entry of the question section (RFC 1035 §4.1.2).
public struct DNSQuestion: Hashable, Sendable, CustomStringConvertible {
    public var name: DNSName
    public var type: DNSRecordType
    public var dnsClass: UInt16

    public init(name: DNSName, type: DNSRecordType, dnsClass: UInt16 = DNSClass.internet) {
        self.name = name
        self.type = type
        self.dnsClass = dnsClass
    }

    public var description: String {
        "\(name) \(dnsClass == DNSClass.internet ? "IN" : "CLASS\(dnsClass)") \(type)"
    }
}
