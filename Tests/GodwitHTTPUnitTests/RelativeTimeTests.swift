import Testing

@testable import GodwitHTTP

/// The job's times come as PostgreSQL's `to_json` of a timestamptz, in the session's time zone;
/// the pages show them in UTC, seconds truncated, as `to_char(... AT TIME ZONE 'UTC')` did.
@Suite("UTC text of a job's times")
struct RelativeTimeTests {
    @Test(arguments: [
        ("2026-12-06T23:28:18.123456+00:00", "2026-12-06 23:28:18"),
        ("2026-12-06T23:28:18+00:00", "2026-12-06 23:28:18"),
        ("2026-12-07T00:28:18.999+01:00", "2026-12-06 23:28:18"),
        ("2026-12-06T18:58:18.5-04:30", "2026-12-06 23:28:18"),
        ("2027-01-01T05:30:00+05:30", "2027-01-01 00:00:00"),
        ("2026-12-06T23:28:18Z", "2026-12-06 23:28:18"),
        ("infinity", "infinity"),
    ])
    func utcOfISO(iso: String, utc: String) {
        #expect(RelativeTime.utc(iso: iso) == utc)
    }
}
