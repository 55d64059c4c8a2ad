/// Ages and durations in the words a person reads at a glance ("3 min ago", "2 h 5 min"), with
/// the absolute UTC time kept for a `<time>` element's title.
enum RelativeTime {
    /// `seconds` as a duration: `850 ms`, `42 s`, `3 min 5 s`, `2 h 5 min`, `3 d 4 h`.
    static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite else { return "" }
        let seconds = max(seconds, 0)
        if seconds < 1 { return "\(Int(seconds * 1000)) ms" }
        let s = Int(seconds)
        if s < 60 { return "\(s) s" }
        if s < 600 { return s % 60 == 0 ? "\(s / 60) min" : "\(s / 60) min \(s % 60) s" }
        if s < 3600 { return "\(s / 60) min" }
        if s < 86400 { return s % 3600 / 60 == 0 ? "\(s / 3600) h" : "\(s / 3600) h \(s % 3600 / 60) min" }
        return s % 86400 / 3600 == 0 ? "\(s / 86400) d" : "\(s / 86400) d \(s % 86400 / 3600) h"
    }

    /// `seconds` before now, coarser than a duration (the exact time is in the title):
    /// `just now`, `42 s ago`, `3 min ago`, `2 h ago`, `3 d ago`. A negative age (a time ahead of the database's clock) is "in".
    static func ago(_ seconds: Double) -> String {
        guard seconds.isFinite else { return "" }
        if seconds < 0 { return "in " + duration(-seconds) }
        if seconds < 5 { return "just now" }
        let s = Int(seconds)
        if s < 3600 { return (s < 60 ? "\(s) s" : "\(s / 60) min") + " ago" }
        if s < 86400 { return "\(s / 3600) h ago" }
        return "\(s / 86400) d ago"
    }

    /// A `<time>` element showing `text`, its UTC time (`YYYY-MM-DD HH:MM:SS`) in `datetime` and
    /// in the title a pointer shows.
    static func element(_ text: String, utc: String) -> String {
        let machine = utc.replacingOccurrences(of: " ", with: "T") + "Z"
        return "<time datetime=\"\(HTML.escape(machine))\" title=\"\(HTML.escape(utc)) UTC\">\(HTML.escape(text))</time>"
    }
}
