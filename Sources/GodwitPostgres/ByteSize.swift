import Foundation

/// Sizes for a person, in `pg_size_pretty`'s units (powers of 1024): `812 bytes` below 10 kB,
/// then `136 kB`, `1.2 MB`, `3.4 GB` (a decimal below 10, whole numbers above). One rule for the
/// lint's findings, the dashboard and the CLI.
public enum ByteSize {
    public static func description(_ bytes: Int64) -> String {
        guard bytes >= 10 * 1024 else { return "\(bytes) bytes" }
        var value = Double(bytes)
        for unit in ["kB", "MB", "GB", "TB"] {
            value /= 1024
            if value < 1024 || unit == "TB" {
                return value < 10 ? "\(String(format: "%.1f", value)) \(unit)" : "\(Int(value.rounded())) \(unit)"
            }
        }
        return "\(bytes) bytes"
    }
}
