/// A run's targets as `fleet status`, and the end of `fleet migrate`, print them: one line a
/// target under a header, columns aligned, then a summary line.
public enum FleetTable {
    /// The header, then a line per target.
    public static func lines(_ targets: [FleetTargetRecord]) -> [String] {
        let header = ["TARGET", "STATE", "APPLIED", "LOCK WAIT", "TIME", "ERROR"]
        let rows = targets.map(cells)
        var widths = header.map(\.count)
        for row in rows {
            for (index, cell) in row.enumerated() where index < widths.count - 1 {
                widths[index] = max(widths[index], cell.count)
            }
        }
        func format(_ row: [String]) -> String {
            var text = ""
            for (index, cell) in row.enumerated() {
                if index == row.count - 1 {
                    text += cell
                } else {
                    text += cell + String(repeating: " ", count: widths[index] - cell.count + 2)
                }
            }
            while text.hasSuffix(" ") { text.removeLast() }
            return text
        }
        return [format(header)] + rows.map(format)
    }

    /// One target's cells: name (with `*` for a canary), state, versions applied, lock wait,
    /// time taken, error.
    static func cells(_ target: FleetTargetRecord) -> [String] {
        [
            target.name + (target.canary ? " *" : ""),
            target.state.rawValue,
            applied(target.appliedVersions),
            target.lockWaitMs.map(milliseconds) ?? "-",
            target.durationSeconds.map(seconds) ?? "-",
            target.error ?? "",
        ]
    }

    /// `-`, `20240101000000`, or `3 (1..3)`.
    static func applied(_ versions: [Int64]) -> String {
        switch versions.count {
        case 0: return "-"
        case 1: return "\(versions[0])"
        default: return "\(versions.count) (\(versions.first!)..\(versions.last!))"
        }
    }

    static func milliseconds(_ value: Double) -> String {
        value < 1000 ? "\(Int(value.rounded()))ms" : seconds(value / 1000)
    }

    static func seconds(_ value: Double) -> String {
        value < 60 ? "\((value * 100).rounded() / 100)s" : "\(Int(value / 60))m\(Int(value) % 60)s"
    }

    /// `62 targets: 61 succeeded, 1 failed` (states with none left out, in their order).
    public static func summary(_ targets: [FleetTargetRecord]) -> String {
        let counts = FleetTargetState.allCases.compactMap { state -> String? in
            let count = targets.filter { $0.state == state }.count
            return count == 0 ? nil : "\(count) \(state.rawValue)"
        }
        return "\(targets.count) target\(targets.count == 1 ? "" : "s"): \(counts.joined(separator: ", "))"
    }
}
