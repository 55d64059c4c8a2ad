import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// UTC timestamps for file names (`20240101120000`, `20240101-120000`), formatted with the C
/// library rather than `DateFormatter`, which would load ICU's data (megabytes) for a fixed,
/// locale-free pattern.
public enum UTCTimestamp {
    /// `date` in UTC with a `strftime` pattern, such as `%Y%m%d%H%M%S`.
    public static func format(_ date: Date, _ pattern: String) -> String {
        var seconds = time_t(date.timeIntervalSince1970.rounded(.down))
        var parts = tm()
        gmtime_r(&seconds, &parts)
        var buffer = [CChar](repeating: 0, count: 64)
        let count = strftime(&buffer, buffer.count, pattern, &parts)
        return String(decoding: buffer.prefix(count).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
