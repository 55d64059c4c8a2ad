extension Duration {
    /// The duration in seconds, for SQL (`make_interval(secs => $1)`) and rates.
    public var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }

    /// The duration in milliseconds.
    public var milliseconds: Double { seconds * 1000 }

    /// The duration in whole nanoseconds (what sqlx stores as `execution_time`).
    public var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }

    /// Formats like Rust's `Debug` for `std::time::Duration` (`1.5s`, `12.345ms`, `80µs`), which
    /// is what sqlx prints after each migration and what Godwit's log lines use.
    ///
    /// Written out by hand rather than with Foundation's formatters, which load ICU (several
    /// megabytes of resident memory in a worker that otherwise needs none of it).
    public var rustDebugDescription: String {
        let total = nanoseconds
        func format(_ whole: Int64, _ fraction: Int64, digits: Int, unit: String) -> String {
            guard fraction > 0 else { return "\(whole)\(unit)" }
            var text = String(fraction)
            text = String(repeating: "0", count: digits - text.count) + text
            while text.hasSuffix("0") { text.removeLast() }
            return "\(whole).\(text)\(unit)"
        }
        if total >= 1_000_000_000 {
            return format(total / 1_000_000_000, total % 1_000_000_000, digits: 9, unit: "s")
        } else if total >= 1_000_000 {
            return format(total / 1_000_000, total % 1_000_000, digits: 6, unit: "ms")
        } else if total >= 1_000 {
            return format(total / 1_000, total % 1_000, digits: 3, unit: "µs")
        }
        return "\(total)ns"
    }

    /// Rounded for a person: `350 ms`, `4.2 s`, `12 s`, `4 min`, `2 h 5 min`.
    public var roundedDescription: String {
        let seconds = self.seconds
        if seconds < 1 { return "\(Int(milliseconds.rounded())) ms" }
        if seconds < 10 { return "\(Double(Int(seconds * 10)) / 10) s" }
        if seconds < 90 { return "\(Int(seconds.rounded())) s" }
        let minutes = Int((seconds / 60).rounded())
        if minutes < 90 { return "\(minutes) min" }
        return "\(minutes / 60) h \(minutes % 60) min"
    }

    /// Milliseconds for a person reading a table or a reason: tenths below 10 ms (`0.4 ms`,
    /// `8.5 ms`), whole milliseconds above (`10 ms`, `238 ms`).
    public var millisecondsDescription: String {
        let tenths = Int((milliseconds * 10).rounded())
        return tenths < 100 ? "\(tenths / 10).\(tenths % 10) ms" : "\(Int(milliseconds.rounded())) ms"
    }

    /// For `poll()`: whole milliseconds, rounded up so that a wait never ends early, at least 0.
    var pollMilliseconds: Int32 {
        guard self > .zero else { return 0 }
        return Int32(clamping: Int64((milliseconds).rounded(.up)))
    }
}
