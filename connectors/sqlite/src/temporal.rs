//! SQLite's date and time representations, read back exactly: ISO-8601 text
//! (the formats SQLite's date functions accept, with an optional `Z` or
//! `±HH:MM` suffix that is normalized to UTC), integers as Unix-epoch seconds,
//! and reals as Julian day numbers (millisecond precision, as SQLite keeps them).

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta};

/// Julian day 0 at noon, in milliseconds before the Unix epoch — SQLite's
/// `iJD` value of 1970-01-01 00:00:00.
const UNIX_EPOCH_JULIAN_MS: i64 = 210_866_760_000_000;

/// A timestamp from a stored integer (Unix seconds).
pub(crate) fn from_unix_seconds(seconds: i64) -> Option<NaiveDateTime> {
    DateTime::from_timestamp(seconds, 0).map(|d| d.naive_utc())
}

/// A timestamp from a stored real (a Julian day number), rounded to the
/// millisecond like SQLite's own `datetime()`.
pub(crate) fn from_julian_day(day: f64) -> Option<NaiveDateTime> {
    if !day.is_finite() || !(0.0..=5_373_484.5).contains(&day) {
        return None;
    }
    #[allow(clippy::cast_possible_truncation)] // the range is checked above
    let julian_ms = (day * 86_400_000.0 + 0.5) as i64;
    DateTime::from_timestamp_millis(julian_ms - UNIX_EPOCH_JULIAN_MS).map(|d| d.naive_utc())
}

/// Parses `YYYY-MM-DD[( |T)HH:MM[:SS[.fff…]]][ ][Z|±HH:MM]` (the time zone
/// suffix is applied, giving UTC).
pub(crate) fn parse_datetime(text: &str) -> Option<NaiveDateTime> {
    let text = text.trim();
    let date = NaiveDate::parse_from_str(text.get(..10)?, "%Y-%m-%d").ok()?;
    let rest = &text[10..];
    if rest.is_empty() {
        return date.and_hms_opt(0, 0, 0);
    }
    let rest = rest.strip_prefix(['T', 't', ' '])?.trim_start();
    let (time, zone) = split_time(rest)?;
    let local = date.and_time(time);
    let offset = parse_zone(zone)?;
    local.checked_sub_signed(offset)
}

/// Parses `HH:MM[:SS[.fff…]]` (no time zone).
pub(crate) fn parse_time(text: &str) -> Option<NaiveTime> {
    match split_time(text.trim())? {
        (time, "") => Some(time),
        _ => None,
    }
}

/// Reads a time of day from the front of `text`, returning the rest.
fn split_time(text: &str) -> Option<(NaiveTime, &str)> {
    let digits = |s: &str, n: usize| -> Option<u32> {
        let part = s.get(..n)?;
        part.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let hour = digits(text, 2)?;
    let rest = text.get(2..)?.strip_prefix(':')?;
    let minute = digits(rest, 2)?;
    let mut rest = &rest[2..];
    let mut second = 0;
    let mut nanos = 0;
    if let Some(after) = rest.strip_prefix(':') {
        second = digits(after, 2)?;
        rest = &after[2..];
        if let Some(after) = rest.strip_prefix('.') {
            let len = after.bytes().take_while(u8::is_ascii_digit).count();
            if len == 0 {
                return None;
            }
            // Nanoseconds from the first nine digits; further digits are below precision.
            let mut fraction: String = after[..len].chars().take(9).collect();
            while fraction.len() < 9 {
                fraction.push('0');
            }
            nanos = fraction.parse().ok()?;
            rest = &after[len..];
        }
    }
    Some((
        NaiveTime::from_hms_nano_opt(hour, minute, second, nanos)?,
        rest,
    ))
}

/// `""` → no offset, `Z` → UTC, `±HH:MM` (or `±HHMM`) → that offset.
fn parse_zone(zone: &str) -> Option<TimeDelta> {
    let zone = zone.trim();
    if zone.is_empty() || zone.eq_ignore_ascii_case("z") {
        return Some(TimeDelta::zero());
    }
    let (sign, rest) = match zone.as_bytes().first()? {
        b'+' => (1, &zone[1..]),
        b'-' => (-1, &zone[1..]),
        _ => return None,
    };
    let compact = rest.replace(':', "");
    if compact.len() != 4 || !compact.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let hours: i64 = compact[..2].parse().ok()?;
    let minutes: i64 = compact[2..].parse().ok()?;
    if hours > 14 || minutes > 59 {
        return None;
    }
    Some(TimeDelta::minutes(sign * (hours * 60 + minutes)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn ts(text: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f").unwrap()
    }

    #[rstest]
    #[case("2024-05-01", "2024-05-01 00:00:00")]
    #[case("2024-05-01 12:34", "2024-05-01 12:34:00")]
    #[case("2024-05-01 12:34:56", "2024-05-01 12:34:56")]
    #[case("2024-05-01T12:34:56.123456", "2024-05-01 12:34:56.123456")]
    #[case("2024-05-01 12:34:56.5", "2024-05-01 12:34:56.500")]
    #[case("2024-05-01 12:34:56.123456789", "2024-05-01 12:34:56.123456789")]
    #[case("2024-05-01 12:34:56Z", "2024-05-01 12:34:56")]
    #[case("2024-05-01 12:34:56+02:00", "2024-05-01 10:34:56")]
    #[case("2024-05-01T00:30:00 -01:30", "2024-05-01 02:00:00")]
    #[case("  2024-05-01 12:34:56  ", "2024-05-01 12:34:56")]
    fn iso_text(#[case] text: &str, #[case] expected: &str) {
        assert_eq!(parse_datetime(text), Some(ts(expected)), "{text}");
    }

    #[rstest]
    #[case("")]
    #[case("yesterday")]
    #[case("2024-13-01")]
    #[case("2024-05-01x12:00")]
    #[case("2024-05-01 25:00")]
    #[case("2024-05-01 12:00:00 CET")]
    #[case("2024-05-01 12:00:00.")]
    #[case("12:00:00")]
    fn not_timestamps(#[case] text: &str) {
        assert_eq!(parse_datetime(text), None, "{text}");
    }

    #[rstest]
    #[case("12:34", Some("12:34:00"))]
    #[case("12:34:56.789", Some("12:34:56.789"))]
    #[case("23:59:59.999999", Some("23:59:59.999999"))]
    #[case("12:34:56Z", None)]
    #[case("noon", None)]
    fn times(#[case] text: &str, #[case] expected: Option<&str>) {
        let expected = expected.map(|t| NaiveTime::parse_from_str(t, "%H:%M:%S%.f").unwrap());
        assert_eq!(parse_time(text), expected, "{text}");
    }

    #[test]
    fn numbers_as_sqlite_reads_them() {
        assert_eq!(from_unix_seconds(0), Some(ts("1970-01-01 00:00:00")));
        assert_eq!(
            from_unix_seconds(1_714_566_896),
            Some(ts("2024-05-01 12:34:56"))
        );
        // julianday('2024-05-01 12:34:56.789') in SQLite.
        assert_eq!(
            from_julian_day(2_460_432.024_268_391),
            Some(ts("2024-05-01 12:34:56.789"))
        );
        assert_eq!(
            from_julian_day(2_440_587.5),
            Some(ts("1970-01-01 00:00:00"))
        );
        assert_eq!(from_julian_day(f64::NAN), None);
        assert_eq!(from_julian_day(-1.0), None);
    }
}
