/// Regular expressions matched in time linear in the input: RE2's syntax, compiled to a
/// Thompson NFA and run as a Pike VM (every thread advanced in lockstep, one pass over the
/// input, at most one thread per instruction). Patterns in routes, rewrites and JSON Schemas run
/// on bytes clients choose; Swift's `Regex` backtracks, so `^(a+)+$` against a long run of `a`s
/// and a `!` would hold an event loop for minutes. No package in reach matches in linear time,
/// hence this one.
///
/// The syntax: literals, `.`, classes `[a-z_]` and `[^…]`, `\d \w \s \D \W \S`, escaped
/// punctuation and `\n \r \t`, groups `( )` and `(?: )`, alternation `|`, the quantifiers
/// `* + ? {n} {n,} {n,m}` (greedy, or lazy with a trailing `?`), and the anchors `^ $`.
/// What needs backtracking (backreferences, lookaround) or is not implemented here is a
/// ``SyntaxError`` that says so. Matching works on Unicode scalars; `.` is any but `\n`.
public struct LinearRegex: Sendable {
    public struct SyntaxError: Error, CustomStringConvertible, Equatable {
        public let description: String
    }

    /// Scalars a class or an escape accepts.
    struct Set: Sendable, Hashable {
        var ranges: [ClosedRange<UInt32>]
        var negated = false

        func contains(_ scalar: Unicode.Scalar) -> Bool {
            ranges.contains { $0.contains(scalar.value) } != negated
        }

        static let digit = Set(ranges: [48...57])
        static let word = Set(ranges: [48...57, 65...90, 95...95, 97...122])
        static let space = Set(ranges: [9...13, 32...32])
    }

    enum Instruction: Sendable, Hashable {
        case scalar(Unicode.Scalar)
        case any
        case set(Set)
        /// Go on at both; the first is preferred (leftmost-first, as Perl and RE2 choose).
        case split(Int, Int)
        case jump(Int)
        case save(Int)
        case atStart
        case atEnd
        case match
    }

    public let source: String
    let program: [Instruction]
    /// Capturing groups, not counting the whole match.
    public let groupCount: Int

    public init(_ source: String) throws(SyntaxError) {
        var parser = Parser(Array(source.unicodeScalars))
        let tree = try parser.parse()
        var compiler = Compiler()
        compiler.emit(.save(0))
        compiler.compile(tree)
        compiler.emit(.save(1))
        compiler.emit(.match)
        // Counted repetitions are compiled out copy by copy: a bound on the program keeps the
        // per-byte cost (one step per instruction) bounded too.
        guard compiler.program.count <= Self.maxProgram else {
            throw SyntaxError(description: "the pattern is too large once its repetitions are counted out (over \(Self.maxProgram) steps)")
        }
        self.source = source
        self.program = compiler.program
        self.groupCount = parser.groups
    }

    /// Whether the whole of `text` matches.
    public func wholeMatch(_ text: some StringProtocol) -> Bool {
        run(Array(text.unicodeScalars), anchored: true, captures: false) != nil
    }

    /// Whether some part of `text` matches (a search, as JSON Schema's `pattern` is).
    public func containsMatch(_ text: some StringProtocol) -> Bool {
        run(Array(text.unicodeScalars), anchored: false, captures: false) != nil
    }

    /// The groups of a whole match (index 0 the whole text), nil for a group that took no part;
    /// nil when `text` does not match.
    public func wholeMatchGroups(_ text: String) -> [String?]? {
        let scalars = Array(text.unicodeScalars)
        guard let slots = run(scalars, anchored: true, captures: true) else { return nil }
        return (0...groupCount).map { group in
            let start = slots[2 * group]
            let end = slots[2 * group + 1]
            guard start >= 0, end >= start else { return nil }
            var view = String.UnicodeScalarView()
            view.append(contentsOf: scalars[start..<end])
            return String(view)
        }
    }

    // MARK: The Pike VM

    private struct Thread {
        var pc: Int
        var slots: [Int]
    }

    /// Runs the program over `input`. Anchored: the match must span the whole input; otherwise
    /// the first match anywhere. Returns the capture slots of the preferred match.
    private func run(_ input: [Unicode.Scalar], anchored: Bool, captures: Bool) -> [Int]? {
        let slotCount = captures ? 2 * (groupCount + 1) : 0
        var current: [Thread] = []
        var next: [Thread] = []
        var onList = [Int](repeating: -1, count: program.count)
        var matched: [Int]?
        current.reserveCapacity(program.count)
        next.reserveCapacity(program.count)

        /// Follows jumps, splits, saves and anchors from `pc` at `position`, adding the
        /// threads that wait on input to `list` in priority order.
        func add(_ list: inout [Thread], _ pc: Int, _ slots: [Int], at position: Int, generation: Int) {
            if onList[pc] == generation { return }
            onList[pc] = generation
            switch program[pc] {
            case .jump(let target):
                add(&list, target, slots, at: position, generation: generation)
            case .split(let first, let second):
                add(&list, first, slots, at: position, generation: generation)
                add(&list, second, slots, at: position, generation: generation)
            case .save(let slot):
                if captures, slot < slots.count {
                    var saved = slots
                    saved[slot] = position
                    add(&list, pc + 1, saved, at: position, generation: generation)
                } else {
                    add(&list, pc + 1, slots, at: position, generation: generation)
                }
            case .atStart:
                if position == 0 { add(&list, pc + 1, slots, at: position, generation: generation) }
            case .atEnd:
                if position == input.count { add(&list, pc + 1, slots, at: position, generation: generation) }
            default:
                list.append(Thread(pc: pc, slots: slots))
            }
        }

        let empty = [Int](repeating: -1, count: slotCount)
        var generation = 0
        add(&current, 0, empty, at: 0, generation: generation)
        var position = 0
        while true {
            generation += 1
            next.removeAll(keepingCapacity: true)
            let scalar = position < input.count ? input[position] : nil
            for thread in current {
                switch program[thread.pc] {
                case .match:
                    if anchored && position != input.count { continue }
                    matched = thread.slots
                    // Lower-priority threads never win over this one.
                    break
                case .scalar(let expected):
                    if scalar == expected { add(&next, thread.pc + 1, thread.slots, at: position + 1, generation: generation) }
                    continue
                case .any:
                    if let scalar, scalar != "\n" { add(&next, thread.pc + 1, thread.slots, at: position + 1, generation: generation) }
                    continue
                case .set(let set):
                    if let scalar, set.contains(scalar) { add(&next, thread.pc + 1, thread.slots, at: position + 1, generation: generation) }
                    continue
                default:
                    continue
                }
                break  // a match cuts the threads after it
            }
            if matched != nil, !captures { return matched }
            if scalar == nil { return matched }
            // Unanchored and nothing found yet: a new attempt starts at the next position,
            // behind every thread already running.
            if !anchored, matched == nil { add(&next, 0, empty, at: position + 1, generation: generation) }
            if next.isEmpty { return matched }
            swap(&current, &next)
            position += 1
        }
    }
}

// MARK: Parsing

extension LinearRegex {
    indirect enum Node: Sendable {
        case empty
        case scalar(Unicode.Scalar)
        case any
        case set(Set)
        case atStart
        case atEnd
        case group(Node, index: Int?)
        case concatenation([Node])
        case alternation([Node])
        case repetition(Node, min: Int, max: Int?, greedy: Bool)
    }

    /// RE2 refuses counted repetitions above 1000; so does this (each copy is compiled out).
    static let maxRepeat = 1000
    static let maxProgram = 20_000

    struct Parser {
        let scalars: [Unicode.Scalar]
        var index = 0
        var groups = 0

        init(_ scalars: [Unicode.Scalar]) {
            self.scalars = scalars
        }

        func fail(_ message: String) -> SyntaxError {
            SyntaxError(description: message)
        }

        var peek: Unicode.Scalar? { index < scalars.count ? scalars[index] : nil }

        mutating func parse() throws(SyntaxError) -> Node {
            let node = try alternation()
            if index < scalars.count { throw fail("unmatched ) at position \(index)") }
            return node
        }

        mutating func alternation() throws(SyntaxError) -> Node {
            var branches = [try concatenation()]
            while peek == "|" {
                index += 1
                branches.append(try concatenation())
            }
            return branches.count == 1 ? branches[0] : .alternation(branches)
        }

        mutating func concatenation() throws(SyntaxError) -> Node {
            var items: [Node] = []
            while let scalar = peek, scalar != "|", scalar != ")" {
                items.append(try repetition())
            }
            return items.isEmpty ? .empty : items.count == 1 ? items[0] : .concatenation(items)
        }

        mutating func repetition() throws(SyntaxError) -> Node {
            var node = try atom()
            while let scalar = peek {
                let bounds: (Int, Int?)
                switch scalar {
                case "*": bounds = (0, nil)
                case "+": bounds = (1, nil)
                case "?": bounds = (0, 1)
                case "{":
                    guard let counted = try counted() else { return node }
                    bounds = counted
                default: return node
                }
                if scalar != "{" { index += 1 }
                var greedy = true
                if peek == "?" {
                    greedy = false
                    index += 1
                }
                if case .repetition = node { throw fail("a quantifier after a quantifier at position \(index - 1): write a group, e.g. (a*)*") }
                node = .repetition(node, min: bounds.0, max: bounds.1, greedy: greedy)
            }
            return node
        }

        /// `{n}`, `{n,}` or `{n,m}`; nil (and nothing consumed) when the brace is a literal.
        mutating func counted() throws(SyntaxError) -> (Int, Int?)? {
            let start = index
            index += 1
            func number() -> Int? {
                var digits = ""
                while let scalar = peek, ("0"..."9").contains(scalar) {
                    digits.unicodeScalars.append(scalar)
                    index += 1
                }
                return digits.isEmpty ? nil : Int(digits.prefix(6))
            }
            guard let low = number() else {
                index = start
                return nil
            }
            var high: Int? = low
            if peek == "," {
                index += 1
                high = number()
            }
            guard peek == "}" else {
                index = start
                return nil
            }
            index += 1
            if low > LinearRegex.maxRepeat || (high ?? 0) > LinearRegex.maxRepeat {
                throw fail("a counted repetition above \(LinearRegex.maxRepeat)")
            }
            if let high, high < low { throw fail("{\(low),\(high)}: the maximum is below the minimum") }
            return (low, high)
        }

        mutating func atom() throws(SyntaxError) -> Node {
            guard let scalar = peek else { throw fail("the pattern ends where an expression was expected") }
            index += 1
            switch scalar {
            case ".": return .any
            case "^": return .atStart
            case "$": return .atEnd
            case "(": return try group()
            case "[": return .set(try set())
            case "\\": return try escape(inClass: false)
            case "*", "+", "?": throw fail("nothing to repeat before \(scalar) at position \(index - 1)")
            default: return .scalar(scalar)
            }
        }

        mutating func group() throws(SyntaxError) -> Node {
            var capture: Int?
            if peek == "?" {
                index += 1
                switch peek {
                case ":": index += 1
                case "=", "!": throw fail("lookahead (?\(peek!)…) needs backtracking and is not supported")
                case "<":
                    if index + 1 < scalars.count, scalars[index + 1] == "=" || scalars[index + 1] == "!" {
                        throw fail("lookbehind needs backtracking and is not supported")
                    }
                    throw fail("named groups (?<name>…) are not supported; use (…) and $1")
                default: throw fail("(?\(peek.map(String.init) ?? "")…) is not supported; use (…) or (?:…)")
                }
            } else {
                groups += 1
                capture = groups
            }
            let inner = try alternation()
            guard peek == ")" else { throw fail("missing ) for the group opened before position \(index)") }
            index += 1
            return .group(inner, index: capture)
        }

        mutating func set() throws(SyntaxError) -> Set {
            var result = Set(ranges: [])
            if peek == "^" {
                result.negated = true
                index += 1
            }
            var first = true
            while true {
                guard let scalar = peek else { throw fail("missing ] for a class") }
                if scalar == "]", !first {
                    index += 1
                    return result
                }
                first = false
                index += 1
                var low: UInt32
                if scalar == "\\" {
                    switch try escape(inClass: true) {
                    case .scalar(let escaped): low = escaped.value
                    case .set(let inner) where !inner.negated:
                        result.ranges += inner.ranges
                        continue
                    default: throw fail("\\D, \\W and \\S are not supported inside a class")
                    }
                } else {
                    if scalar == "[", peek == ":" { throw fail("POSIX classes [:name:] are not supported; use \\d, \\w, \\s or ranges") }
                    low = scalar.value
                }
                if peek == "-", index + 1 < scalars.count, scalars[index + 1] != "]" {
                    index += 1
                    guard var high = peek?.value else { throw fail("missing ] for a class") }
                    index += 1
                    if high == UInt32(("\\" as Unicode.Scalar).value) {
                        guard case .scalar(let escaped) = try escape(inClass: true) else { throw fail("a class range ends in a class") }
                        high = escaped.value
                    }
                    guard low <= high else { throw fail("a class range goes backwards") }
                    result.ranges.append(low...high)
                } else {
                    result.ranges.append(low...low)
                }
            }
        }

        mutating func escape(inClass: Bool) throws(SyntaxError) -> Node {
            guard let scalar = peek else { throw fail("the pattern ends with \\") }
            index += 1
            switch scalar {
            case "d": return .set(.digit)
            case "w": return .set(.word)
            case "s": return .set(.space)
            case "D", "W", "S":
                var set: Set = scalar == "D" ? .digit : scalar == "W" ? .word : .space
                set.negated = true
                return .set(set)
            case "n": return .scalar("\n")
            case "r": return .scalar("\r")
            case "t": return .scalar("\t")
            case "1"..."9": throw fail("backreferences (\\\(scalar)) need backtracking and are not supported")
            case "b", "B", "A", "z", "Z": throw fail("\\\(scalar) is not supported")
            case "p", "P": throw fail("Unicode classes \\\(scalar){…} are not supported")
            default:
                guard scalar.value < 128, !(scalar.properties.isAlphabetic || ("0"..."9").contains(scalar)) else {
                    throw fail("unknown escape \\\(scalar)")
                }
                return .scalar(scalar)
            }
        }
    }

    // MARK: Compiling

    struct Compiler {
        var program: [Instruction] = []

        mutating func emit(_ instruction: Instruction) {
            program.append(instruction)
        }

        mutating func compile(_ node: Node) {
            switch node {
            case .empty: break
            case .scalar(let scalar): emit(.scalar(scalar))
            case .any: emit(.any)
            case .set(let set): emit(.set(set))
            case .atStart: emit(.atStart)
            case .atEnd: emit(.atEnd)
            case .group(let inner, let capture):
                if let capture { emit(.save(2 * capture)) }
                compile(inner)
                if let capture { emit(.save(2 * capture + 1)) }
            case .concatenation(let items):
                for item in items { compile(item) }
            case .alternation(let branches):
                var jumps: [Int] = []
                for (position, branch) in branches.enumerated() {
                    if position < branches.count - 1 {
                        let split = program.count
                        emit(.split(split + 1, -1))
                        compile(branch)
                        jumps.append(program.count)
                        emit(.jump(-1))
                        program[split] = .split(split + 1, program.count)
                    } else {
                        compile(branch)
                    }
                }
                for jump in jumps { program[jump] = .jump(program.count) }
            case .repetition(let inner, let min, let max, let greedy):
                for _ in 0..<min { compile(inner) }
                if let max {
                    // Up to max − min optional copies, each skipping the rest when not taken.
                    var skips: [Int] = []
                    for _ in min..<max {
                        skips.append(program.count)
                        emit(.split(-1, -1))
                        compile(inner)
                    }
                    for skip in skips { program[skip] = greedy ? .split(skip + 1, program.count) : .split(program.count, skip + 1) }
                } else {
                    // A star: loop back while the body matches something.
                    let loop = program.count
                    emit(.split(-1, -1))
                    compile(inner)
                    emit(.jump(loop))
                    program[loop] = greedy ? .split(loop + 1, program.count) : .split(program.count, loop + 1)
                }
            }
        }
    }
}
