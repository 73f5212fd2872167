/// A duration written with units: `250ms`, `10s`, `5m`, `1h`, `1m30s`, `1.5s`.
/// A bare number is rejected: `timeout: 5` could mean seconds or milliseconds.
public struct DurationSpec: Decodable, Sendable, Hashable, CustomStringConvertible {
    public let duration: Duration
    public let text: String

    public init(_ duration: Duration, text: String) {
        self.duration = duration
        self.text = text
    }

    public static func parse(_ text: String) -> DurationSpec? {
        let units: [(suffix: String, nanoseconds: Double)] = [
            ("ns", 1), ("us", 1e3), ("µs", 1e3), ("ms", 1e6), ("s", 1e9), ("m", 60e9), ("h", 3600e9),
        ]
        var rest = Substring(text)
        var total = 0.0
        guard !rest.isEmpty else { return nil }
        while !rest.isEmpty {
            let number = rest.prefix(while: { $0.isNumber || $0 == "." })
            guard !number.isEmpty, let value = Double(number), number.first != "." else { return nil }
            rest = rest.dropFirst(number.count)
            let unitText = rest.prefix(while: { !$0.isNumber && $0 != "." })
            guard let unit = units.first(where: { $0.suffix == unitText }) else { return nil }
            rest = rest.dropFirst(unitText.count)
            total += value * unit.nanoseconds
        }
        guard total.isFinite, total < 9e18 else { return nil }  // Int64 nanoseconds: about 285 years
        return DurationSpec(.nanoseconds(Int64(total.rounded())), text: text)
    }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let parsed = DurationSpec.parse(text) else {
            throw SpecProblem("invalid duration \"\(text)\": write a number with a unit, such as 250ms, 10s, 5m or 1h")
        }
        self = parsed
    }

    public var description: String { text }
}

/// A size in bytes: `16KiB`, `10MiB`, `1GiB` (powers of 1024), `500KB`, `10MB` (powers of 1000),
/// Kubernetes' `128Mi` / `1Gi` / `500M`, or a bare number of bytes.
public struct ByteSize: Decodable, Sendable, Hashable, CustomStringConvertible {
    public let bytes: Int
    public let text: String

    public init(bytes: Int, text: String? = nil) {
        self.bytes = bytes
        self.text = text ?? "\(bytes)"
    }

    public static func parse(_ text: String) -> ByteSize? {
        let multipliers: [String: Int] = [
            "": 1, "B": 1,
            "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40,
            "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40,
            "KB": 1000, "MB": 1_000_000, "GB": 1_000_000_000, "TB": 1_000_000_000_000,
            "k": 1000, "K": 1000, "M": 1_000_000, "G": 1_000_000_000, "T": 1_000_000_000_000,
        ]
        let digits = text.prefix(while: { $0.isASCII && $0.isNumber })
        guard !digits.isEmpty, let value = Int(digits), let multiplier = multipliers[String(text.dropFirst(digits.count))]
        else { return nil }
        let (bytes, overflow) = value.multipliedReportingOverflow(by: multiplier)
        guard !overflow else { return nil }
        return ByteSize(bytes: bytes, text: text)
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let bytes = try? container.decode(Int.self), bytes >= 0 {
            self.init(bytes: bytes)
            return
        }
        let text = try container.decode(String.self)
        guard let parsed = ByteSize.parse(text) else {
            throw SpecProblem("invalid size \"\(text)\": write a whole number with a unit, such as 16KiB, 10MiB or 1GiB")
        }
        self = parsed
    }

    public var description: String { text }
}

/// CPU in Kubernetes quantity form: `250m` (millicores), `1`, `0.5`, `2`.
public struct CPUQuantity: Decodable, Sendable, Hashable, CustomStringConvertible {
    public let millicores: Int
    public let text: String

    public init(millicores: Int, text: String? = nil) {
        self.millicores = millicores
        self.text = text ?? "\(millicores)m"
    }

    public static func parse(_ text: String) -> CPUQuantity? {
        if text.hasSuffix("m") {
            guard let value = Int(text.dropLast()), value > 0 else { return nil }
            return CPUQuantity(millicores: value, text: text)
        }
        guard let cores = Double(text), cores > 0, cores.isFinite, text.first?.isNumber == true else { return nil }
        let millicores = (cores * 1000).rounded()
        guard millicores >= 1, millicores == cores * 1000 else { return nil }
        return CPUQuantity(millicores: Int(millicores), text: text)
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text: String
        if let cores = try? container.decode(Double.self) {
            text = cores == cores.rounded() ? "\(Int(cores))" : "\(cores)"
        } else {
            text = try container.decode(String.self)
        }
        guard let parsed = CPUQuantity.parse(text) else {
            throw SpecProblem("invalid CPU quantity \"\(text)\": write millicores such as 250m, or cores such as 1 or 0.5")
        }
        self = parsed
    }

    public var description: String { text }
}

/// A string enum in the file, with a helpful error for values that are not one of its cases.
public protocol SpecEnum: RawRepresentable<String>, CaseIterable, Decodable, Sendable {}

extension SpecEnum {
    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let value = Self(rawValue: text) else {
            let names = Self.allCases.map(\.rawValue)
            throw SpecProblem(
                "unknown value \"\(text)\": expected one of \(names.joined(separator: ", "))"
                    + Suggestion.hint(for: text, among: names))
        }
        self = value
    }
}
