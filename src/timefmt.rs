//! Timestamps as RFC 3339 text in UTC: push times of the listing extension (with
//! milliseconds) and the issue times of tokens (whole seconds).

use time::macros::format_description;
use time::OffsetDateTime;

/// Milliseconds since the epoch as `2024-05-01T12:34:56.789Z`. Times outside what
/// RFC 3339 can write (years before 0 or after 9999) are clamped to the epoch.
pub fn rfc3339_millis(millis: i64) -> String {
    let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    at.format(format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    ))
    .unwrap_or_else(|_| "1970-01-01T00:00:00.000Z".to_string())
}

/// Seconds since the epoch as `2024-05-01T12:00:00Z`.
pub fn rfc3339_seconds(secs: u64) -> String {
    let at = i64::try_from(secs)
        .ok()
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    at.format(format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
    ))
    .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milliseconds() {
        assert_eq!(rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_millis(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(
            rfc3339_millis(1_714_566_896_789),
            "2024-05-01T12:34:56.789Z"
        );
        assert_eq!(
            rfc3339_millis(4_102_444_799_999),
            "2099-12-31T23:59:59.999Z"
        );
        assert_eq!(rfc3339_millis(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(rfc3339_millis(i64::MAX), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn seconds() {
        assert_eq!(rfc3339_seconds(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_seconds(1_714_564_800), "2024-05-01T12:00:00Z");
        assert_eq!(rfc3339_seconds(u64::MAX), "1970-01-01T00:00:00Z");
    }
}
