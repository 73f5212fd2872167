import Testing

@testable import GantryCore

/// The linear-time matcher against Swift's backtracking `Regex` on the patterns both accept,
/// and on the inputs that make a backtracking matcher take exponential time.
struct LinearRegexTests {
    static let patterns = [
        "abc", "a.c", "a*", "a+b", "a?b", "(ab)+", "(a|b)*c", "[a-c]+", "[^a-c]+", "\\d{2,4}", "\\w+@\\w+\\.com", "x{3}", "x{2,}",
        "(foo|foobar)baz", "^/api/v[0-9]+/.*$", "/users/([0-9]+)/orders/([a-z]+)", "(a*)*b", "((a|b)c)*", "[-a]", "[a\\-z]+", "\\.",
        "a.*?b", "(?:ab|cd){1,2}", "\\s*x\\s*", "[\\d\\s]+", "\\D+", "colou?r", "(a|)b", "",
    ]
    static let inputs = [
        "", "a", "ab", "abc", "aaab", "ababab", "abcabc", "c", "abababc", "12", "12345", "123", "me@host.com", "xxx", "xxxx", "x",
        "foobarbaz", "foobaz", "/api/v2/users", "/api/v/x", "/users/42/orders/open", "/users/x/orders/open", "aab", "acbc", "a-", "z",
        ".", "a123b", "abcd", "cdab", "  x ", "1 2", "color", "colour", "b", "ba",
    ]

    @Test func agreesWithSwiftRegexOnEveryPatternAndInput() throws {
        var disagreements: [String] = []
        for pattern in Self.patterns {
            let linear = try LinearRegex(pattern)
            let swift = try Regex(pattern)
            for input in Self.inputs {
                let whole = (try? swift.wholeMatch(in: input)) != nil
                let contains = (try? swift.firstMatch(in: input)) != nil
                if linear.wholeMatch(input) != whole { disagreements.append("whole \(pattern) on \(input)") }
                if linear.containsMatch(input) != contains { disagreements.append("contains \(pattern) on \(input)") }
                // Which empty iteration of a starred group is reported differs between engines
                // (RE2 and PCRE disagree too), so `(a*)*` is left out of the capture comparison.
                if pattern != "(a*)*b", let match = try? swift.wholeMatch(in: input), let groups = linear.wholeMatchGroups(input) {
                    for index in 0..<match.output.count where match.output[index].substring.map(String.init) != groups[index] {
                        disagreements.append("group \(index) of \(pattern) on \(input): \(groups[index] ?? "nil")")
                    }
                }
            }
        }
        #expect(disagreements == [])
    }

    /// The classic catastrophic patterns: a backtracking matcher takes time exponential in the
    /// input's length on them; this one a single pass. A 100,000-character input is decided.
    @Test(arguments: ["^(a+)+$", "^(a|a)*$", "^(a|aa)+$", "^(.*a){20}$", "(x+x+)+y", "^(\\w+\\s?)*$"])
    func pathologicalPatternsRunInLinearTime(_ pattern: String) throws {
        let regex = try LinearRegex(pattern)
        let attack = String(repeating: "a", count: 100_000) + "!"
        #expect(!regex.wholeMatch(attack))
        #expect(regex.wholeMatch(String(repeating: "a", count: 30)) == (pattern != "(x+x+)+y"))
    }

    @Test func capturesFollowLeftmostFirstPriority() throws {
        #expect(try LinearRegex("/users/([0-9]+)(/.*)?").wholeMatchGroups("/users/42/orders") == ["/users/42/orders", "42", "/orders"])
        #expect(try LinearRegex("(a*)(a*)").wholeMatchGroups("aaa") == ["aaa", "aaa", ""])
        #expect(try LinearRegex("(a*?)(a*)").wholeMatchGroups("aaa") == ["aaa", "", "aaa"])
        #expect(try LinearRegex("(a)|(b)").wholeMatchGroups("b") == ["b", nil, "b"])
    }

    /// What would need backtracking, or is not implemented, is refused with the reason.
    @Test(arguments: [
        ("(a)\\1", "backreferences (\\1) need backtracking and are not supported"),
        ("(?=a)a", "lookahead (?=…) needs backtracking and is not supported"),
        ("(?<=a)b", "lookbehind needs backtracking and is not supported"),
        ("a{2000}", "a counted repetition above 1000"),
        ("(ab", "missing ) for the group opened before position 3"),
        ("a)", "unmatched ) at position 1"),
        ("*a", "nothing to repeat before * at position 0"),
        ("[z-a]", "a class range goes backwards"),
        ("a**", "a quantifier after a quantifier at position 2: write a group, e.g. (a*)*"),
        ("\\p{L}", "Unicode classes \\p{…} are not supported"),
        ("(a{1000}){30}", "the pattern is too large once its repetitions are counted out (over 20000 steps)"),
    ])
    func unsupportedPatternsAreRefusedWithTheReason(_ pattern: String, _ reason: String) {
        #expect(throws: LinearRegex.SyntaxError(description: reason)) { try LinearRegex(pattern) }
    }
}
