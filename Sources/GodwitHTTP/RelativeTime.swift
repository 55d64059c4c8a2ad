import Foundation
import GodwitPostgres

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
        return
            "<time datetime=\"\(HTML.escape(machine))\" title=\"\(HTML.escape(utc)) UTC\">\(HTML.escape(text))</time>"
    }

    /// An ISO 8601 time as PostgreSQL's `to_json` writes a timestamptz
    /// (`2026-01-02T03:04:05.678+01:00`, in the session's time zone) as `YYYY-MM-DD HH:MM:SS` in
    /// UTC, seconds truncated as `to_char` truncates them: what `element(_:utc:)` takes. Text
    /// that is not such a time (`infinity`) comes back as it is.
    static func utc(iso text: String) -> String {
        let characters = Array(text.utf8)
        func number(_ range: Range<Int>) -> Int? {
            guard range.upperBound <= characters.count else { return nil }
            var value = 0
            for c in characters[range] {
                guard c >= 48 && c <= 57 else { return nil }
                value = value * 10 + Int(c - 48)
            }
            return value
        }
        guard characters.count >= 19, characters[10] == UInt8(ascii: "T"), let year = number(0..<4),
            let month = number(5..<7), let day = number(8..<10), let hour = number(11..<13),
            let minute = number(14..<16), let second = number(17..<19)
        else { return text }
        var index = 19
        if index < characters.count, characters[index] == UInt8(ascii: ".") {
            index += 1
            while index < characters.count, characters[index] >= 48 && characters[index] <= 57 { index += 1 }
        }
        var offset = 0
        if index < characters.count, characters[index] == UInt8(ascii: "+") || characters[index] == UInt8(ascii: "-") {
            let sign = characters[index] == UInt8(ascii: "-") ? -1 : 1
            guard let hours = number(index + 1..<index + 3) else { return text }
            var seconds = hours * 3600
            if let minutes = number(index + 4..<index + 6) { seconds += minutes * 60 }
            if let extra = number(index + 7..<index + 9) { seconds += extra }
            offset = sign * seconds
        }
        var parts = tm()
        parts.tm_year = Int32(year - 1900)
        parts.tm_mon = Int32(month - 1)
        parts.tm_mday = Int32(day)
        parts.tm_hour = Int32(hour)
        parts.tm_min = Int32(minute)
        parts.tm_sec = Int32(second)
        let local = timegm(&parts)
        return UTCTimestamp.format(Date(timeIntervalSince1970: TimeInterval(Int(local) - offset)), "%Y-%m-%d %H:%M:%S")
    }
}
