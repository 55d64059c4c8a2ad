import Foundation
import GodwitFleet
import Synchronization

/// What `fleet migrate` and `fleet resume` show while the targets run. On a terminal, a live
/// table: one line a target (its state, the last migration applied, a lock wait, an error),
/// redrawn in place as they change, cut to the terminal's width. Piped, plain lines, one per
/// event worth a line: a target waiting for sqlx's lock, a target's end, those skipped. Lint
/// warnings go to stderr, each distinct one once (on a terminal, after the table).
///
/// Progress arrives from the targets' tasks at once; the lock keeps the table and the output
/// in one order.
final class FleetProgressDisplay: Sendable {
    private struct Row {
        var name: String
        var canary: Bool
        var state = "pending"
        var detail = ""
    }

    private struct State {
        var rows: [Row]
        var index: [String: Int]
        /// How many lines the table drew last (to move up over them).
        var drawn = 0
        var lastDraw = ContinuousClock.now - .seconds(3600)
        var dirty = false
        var warnings = Set<String>()
        /// Lint warnings seen while the live table is drawn, printed after it.
        var heldWarnings: [String] = []
    }

    private let state: Mutex<State>
    private let terminal: Bool
    private let console: Console

    /// `targets` in their order, the canary ones marked; `terminal` draws the live table.
    init(targets: [(name: String, canary: Bool)], terminal: Bool, console: Console = .current) {
        let rows = targets.map { Row(name: $0.name, canary: $0.canary) }
        state = Mutex(
            State(
                rows: rows, index: Dictionary(rows.enumerated().map { ($1.name, $0) }, uniquingKeysWith: { a, _ in a }))
        )
        self.terminal = terminal
        self.console = console
    }

    /// Shows one event of the run.
    func handle(_ progress: FleetRunner.Progress) {
        state.withLock { state in
            var line: String?
            switch progress {
            case .started(let name):
                update(&state, name, "running", "")
            case .waitingForLock(let name):
                update(&state, name, "running", "waiting for the migration lock")
                line = "\(name): waiting for the migration lock (an application or another migrate holds it)"
            case .applied(let name, let event):
                update(&state, name, "running", "applied \(event.version)/\(event.description)")
            case .warning(let name, let message):
                if state.warnings.insert(message).inserted {
                    // On a terminal after the table, which a line between its redraws would break.
                    if terminal {
                        state.heldWarnings.append("\(name): \(message)")
                    } else {
                        console.writeErr("warning: \(shown("\(name): \(message)"))\n")
                    }
                }
            case .finished(let outcome):
                var detail = outcome.applied.isEmpty ? "nothing to apply" : "applied \(Self.versions(outcome.applied))"
                if let error = outcome.error { detail = error }
                update(&state, outcome.name, outcome.state.rawValue, detail)
                line = "\(outcome.name): \(outcome.state.rawValue) in \(Self.seconds(outcome.seconds)): \(detail)"
            case .skipped(let names):
                for name in names { update(&state, name, "skipped", "") }
                line = "skipped \(names.count): \(names.joined(separator: ", "))"
            }
            if terminal {
                draw(&state, force: false)
            } else if let line {
                console.writeOut(shown(line) + "\n")
            }
        }
    }

    /// Draws the table's last state (on a terminal), before the summary.
    func finish() {
        guard terminal else { return }
        state.withLock { state in
            draw(&state, force: true)
            for warning in state.heldWarnings { console.writeErr("warning: \(shown(warning))\n") }
            state.heldWarnings = []
        }
    }

    private func update(_ state: inout State, _ name: String, _ value: String, _ detail: String) {
        guard let index = state.index[name] else { return }
        state.rows[index].state = value
        state.rows[index].detail = detail
        state.dirty = true
    }

    /// Redraws the table in place, at most every 100 ms unless `force`: every line when it fits
    /// the terminal; else a line of counts and the targets running or failed, as many as fit.
    private func draw(_ state: inout State, force: Bool) {
        let now = ContinuousClock.now
        guard state.dirty || force, force || now - state.lastDraw >= .milliseconds(100) else { return }
        let width = max(terminalColumns() - 1, 20)
        let height = max(terminalLines() - 1, 3)
        var rows = state.rows
        var lines: [String] = []
        if rows.count > height {
            let counts = ["pending", "running", "succeeded", "failed", "skipped"].compactMap { state in
                let count = rows.filter { $0.state == state }.count
                return count == 0 ? nil : "\(count) \(state)"
            }
            lines.append("\(rows.count) targets: \(counts.joined(separator: ", "))")
            rows = Array(rows.filter { $0.state == "running" || $0.state == "failed" }.suffix(height - 1))
        }
        let nameWidth = min(rows.map { $0.name.count + ($0.canary ? 2 : 0) }.max() ?? 0, 40)
        for row in rows {
            let name = row.name + (row.canary ? " *" : "")
            let padded = name.padding(toLength: max(nameWidth, name.count), withPad: " ", startingAt: 0)
            lines.append("\(padded)  \(row.state.padding(toLength: 9, withPad: " ", startingAt: 0))  \(row.detail)")
        }
        // Up over the last drawing, each line rewritten, and what is left of the last cleared.
        var text = state.drawn > 0 ? "\u{1B}[\(state.drawn)A" : ""
        for line in lines { text += "\r\u{1B}[2K" + String(shown(line).prefix(width)) + "\n" }
        console.writeOut(text + "\u{1B}[J")
        state.drawn = lines.count
        state.lastDraw = now
        state.dirty = false
    }

    /// Text from targets and the database, its control characters escaped and its secrets scrubbed.
    private func shown(_ text: String) -> String {
        TerminalText.escaped(PrintedSecrets.scrub(text, for: console), keepingNewlines: false)
    }

    static func versions(_ versions: [Int64]) -> String {
        versions.count <= 3
            ? versions.map(String.init).joined(separator: ", ")
            : "\(versions.count) migrations (\(versions.first!)..\(versions.last!))"
    }

    static func seconds(_ value: Double) -> String { "\((value * 100).rounded() / 100)s" }
}

/// The terminal's height in lines (24 when stdout is no terminal).
func terminalLines() -> Int {
    var size = winsize()
    guard ioctl(STDOUT_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_row > 0 else { return 24 }
    return Int(size.ws_row)
}
