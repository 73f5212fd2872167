/// kubectl-style plain tables: upper-case headers, columns separated by three spaces.
struct Table {
    let headers: [String]
    var rows: [[String]] = []

    init(_ headers: String...) {
        self.headers = headers
    }

    var rendered: String {
        let all = [headers] + rows
        let widths = headers.indices.map { column in all.map { $0[column].count }.max() ?? 0 }
        return all.map { row in
            row.enumerated().map { column, cell in
                column == row.count - 1 ? cell : cell.padding(toLength: widths[column] + 3, withPad: " ", startingAt: 0)
            }.joined()
        }.joined(separator: "\n")
    }
}

/// Ages as kubectl prints them: 45s, 12m, 3h, 2d.
func age(seconds: Double) -> String {
    let seconds = max(0, Int(seconds))
    if seconds < 120 { return "\(seconds)s" }
    if seconds < 7200 { return "\(seconds / 60)m" }
    if seconds < 172_800 { return "\(seconds / 3600)h" }
    return "\(seconds / 86400)d"
}
