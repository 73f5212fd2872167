/// `dns:` gantry's authoritative DNS server: the file's zones, and cluster names for services.
public struct DNSSpec: Decodable, Sendable {
    /// `address:port` for UDP and TCP. Default `127.0.0.1:5353`.
    public var listen: String?
    /// Default TTL of records. Default 30s.
    public var ttl: DurationSpec?
    public var zones: [DNSZoneSpec]?
    /// Services answer as `<service>.<namespace>.svc.<clusterDomain>`. Default `cluster.local`.
    public var clusterDomain: String?
    /// Default `default`.
    public var namespace: String?
}

/// `dns.zones[i]`: a zone gantry is authoritative for.
public struct DNSZoneSpec: Decodable, Sendable {
    /// Required, e.g. `example.com`.
    public var origin: String?
    /// Mailbox of the zone's administrator, as an email address. Default `hostmaster@<origin>`.
    public var hostmaster: String?
    /// The SOA's fields (RFC 1035 §3.3.13); each has a default.
    public var soa: DNSSOASpec?
    public var records: [DNSRecordSpec]?
}

/// `dns.zones[i].soa`.
public struct DNSSOASpec: Decodable, Sendable {
    /// The primary name server: one of the zone's NS names. Default the first apex NS target,
    /// else `ns.<origin>`.
    public var mname: String?
    /// The administrator's mailbox, as an email address (`hostmaster@example.com`) or in DNS
    /// form (`hostmaster.example.com`). Default `hostmaster@<origin>`.
    public var rname: String?
    /// Default: a digest of the records, so it changes when they do.
    public var serial: UInt32?
    /// Defaults 1h, 10m, 24h, and the zone's TTL (the TTL of negative answers, RFC 2308).
    public var refresh: DurationSpec?
    public var retry: DurationSpec?
    public var expire: DurationSpec?
    public var minimum: DurationSpec?
}

/// `dns.zones[i].records[j]`: one record; which keys apply depends on `type`.
public struct DNSRecordSpec: Decodable, Sendable {
    /// `@` (the origin), a name relative to the origin (`www`), or a full name ending in the
    /// origin (`www.example.com`). Default `@`.
    public var name: String?
    /// A, AAAA, CNAME, TXT, MX, SRV or NS.
    public var type: String?
    public var ttl: DurationSpec?
    /// A and AAAA: the address.
    public var address: String?
    /// A and AAAA: instead of an address, a load-balancer listener whose address to answer.
    public var listener: String?
    /// CNAME, NS, MX, SRV: the name pointed at.
    public var target: String?
    /// TXT: the strings.
    public var text: [String]?
    /// MX. Default 10.
    public var preference: Int?
    /// SRV. Default 10 and 100.
    public var priority: Int?
    public var weight: Int?
    /// SRV: required.
    public var port: Int?
}
