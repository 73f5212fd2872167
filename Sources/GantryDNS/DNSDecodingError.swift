import GantryCore

/// Why a packet could not be decoded. Every case maps to FORMERR at the server.
public enum DNSDecodingError: Error, Hashable, Sendable {
    /// The packet ended inside a header, name, field or RDATA.
    case truncated
    /// A label length byte with the reserved `01`/`10` top bits (RFC 6891 §5 retired extended
    /// label types), which is also how a "label of 64+" reads.
    case invalidLabelType(UInt8)
    /// A compression pointer that does not point strictly before everything read so far for this
    /// name: forward pointers, self pointers and loops all end up here.
    case invalidPointer(Int)
    case tooManyPointers
    /// More than 255 bytes once decompressed (RFC 1035 §2.3.4).
    case nameTooLong
    /// RDLENGTH does not match what the RDATA of that type contains.
    case rdataLengthMismatch(DNSRecordType)
    /// More than one OPT record (RFC 6891 §6.1.1).
    case multipleOPT
    /// An OPT record outside the additional section or with a non-root owner (RFC 6891 §6.1.1).
    case misplacedOPT
    /// OPT options that do not exactly fill its RDATA (RFC 6891 §6.1.2).
    case malformedOption
    /// Bytes after the last record the header counts announce. Policy: rejected, like BIND, so
    /// that a packet decodes to exactly one message and nothing is silently ignored.
    case trailingBytes(Int)
}
