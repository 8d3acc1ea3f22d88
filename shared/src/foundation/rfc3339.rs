//! Timestamps in API answers: RFC 3339 in UTC, byte for byte as chrono's
//! `Serialize` writes them (`2026-11-28T23:00:18.123456Z`: no fraction when the
//! second is whole, else 3, 6 or 9 digits), but formatted into a buffer and
//! handed to the serializer whole. chrono's impl goes through `collect_str`,
//! which serde_json escapes a few characters at a time: measured with callgrind,
//! that was more than half of a progress answer's serialization.
//!
//! Use with `#[serde(with = "crate::foundation::rfc3339")]` or `"crate::foundation::rfc3339::option"`.

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::{Serialize, Serializer};

pub fn serialize<S: Serializer>(t: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    let mut buf = [0u8; 30];
    match format(t, &mut buf) {
        Some(text) => serializer.serialize_str(text),
        // Years outside 0000-9999 take chrono's signed form.
        None => t.serialize(serializer),
    }
}

pub mod option {
    use super::*;

    pub fn serialize<S: Serializer>(
        t: &Option<DateTime<Utc>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => super::serialize(t, serializer),
            None => serializer.serialize_none(),
        }
    }
}

/// Appends `t` as a JSON string, as [`serialize`] writes it with serde_json.
pub fn push_json(out: &mut String, t: &DateTime<Utc>) {
    let mut buf = [0u8; 30];
    match format(t, &mut buf) {
        Some(text) => {
            out.push('"');
            out.push_str(text);
            out.push('"');
        }
        None => out.push_str(&serde_json::to_string(t).expect("a timestamp serializes")),
    }
}

/// `t` as chrono writes it, or `None` for a year outside 0000-9999.
fn format<'a>(t: &DateTime<Utc>, buf: &'a mut [u8; 30]) -> Option<&'a str> {
    // The UTC parts as stored: each accessor of a `DateTime` converts afresh.
    let naive = t.naive_utc();
    let (date, time) = (naive.date(), naive.time());
    let year = u32::try_from(date.year()).ok().filter(|y| *y <= 9999)?;
    let mut second = time.second();
    let mut nano = time.nanosecond();
    if nano >= 1_000_000_000 {
        // A leap second: chrono writes it as second 60.
        second += 1;
        nano -= 1_000_000_000;
    }
    put(buf, 0, year, 4);
    buf[4] = b'-';
    put(buf, 5, date.month(), 2);
    buf[7] = b'-';
    put(buf, 8, date.day(), 2);
    buf[10] = b'T';
    put(buf, 11, time.hour(), 2);
    buf[13] = b':';
    put(buf, 14, time.minute(), 2);
    buf[16] = b':';
    put(buf, 17, second, 2);
    let mut len = 19;
    let (fraction, digits) = if nano == 0 {
        (0, 0)
    } else if nano % 1_000_000 == 0 {
        (nano / 1_000_000, 3)
    } else if nano % 1_000 == 0 {
        (nano / 1_000, 6)
    } else {
        (nano, 9)
    };
    if digits > 0 {
        buf[len] = b'.';
        put(buf, len + 1, fraction, digits);
        len += 1 + digits;
    }
    buf[len] = b'Z';
    std::str::from_utf8(&buf[..=len]).ok()
}

/// `value` as `width` decimal digits, zero-padded, at `at`.
fn put(buf: &mut [u8], at: usize, mut value: u32, width: usize) {
    for i in (at..at + width).rev() {
        buf[i] = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, TimeZone};

    use super::*;

    #[derive(Serialize)]
    struct Ours(#[serde(with = "crate::foundation::rfc3339")] DateTime<Utc>);

    #[derive(Serialize)]
    struct OursOption(#[serde(with = "crate::foundation::rfc3339::option")] Option<DateTime<Utc>>);

    fn assert_as_chrono(t: DateTime<Utc>) {
        let chrono = serde_json::to_string(&t).unwrap();
        assert_eq!(serde_json::to_string(&Ours(t)).unwrap(), chrono, "{t:?}");
        assert_eq!(serde_json::to_string(&OursOption(Some(t))).unwrap(), chrono);
        let mut pushed = String::new();
        push_json(&mut pushed, &t);
        assert_eq!(pushed, chrono);
    }

    #[test]
    fn timestamps_are_written_exactly_as_chrono_writes_them() {
        // A deterministic spread of instants: every year length, every
        // fraction class (none, milli, micro, nano), and PostgreSQL's
        // microsecond timestamps.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let seconds = (next() % 253_402_300_799) as i64 - 62_135_596_800; // 0001..9999
            let nano = match next() % 4 {
                0 => 0,
                1 => (next() % 1_000) as u32 * 1_000_000,
                2 => (next() % 1_000_000) as u32 * 1_000,
                _ => (next() % 1_000_000_000) as u32,
            };
            assert_as_chrono(Utc.timestamp_opt(seconds, nano).unwrap());
        }
    }

    #[test]
    fn edge_instants_are_written_as_chrono_writes_them() {
        let leap = NaiveDate::from_ymd_opt(2016, 12, 31)
            .unwrap()
            .and_hms_nano_opt(23, 59, 59, 1_500_000_000)
            .unwrap()
            .and_utc();
        let year_zero = NaiveDate::from_ymd_opt(0, 1, 1)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc();
        let before_zero = NaiveDate::from_ymd_opt(-1, 12, 31)
            .unwrap()
            .and_hms_micro_opt(23, 59, 59, 1)
            .unwrap()
            .and_utc();
        let far = NaiveDate::from_ymd_opt(10_000, 1, 1)
            .unwrap()
            .and_hms_milli_opt(0, 0, 0, 5)
            .unwrap()
            .and_utc();
        for t in [
            leap,
            year_zero,
            before_zero,
            far,
            DateTime::<Utc>::MIN_UTC,
            DateTime::<Utc>::MAX_UTC,
            DateTime::UNIX_EPOCH,
        ] {
            assert_as_chrono(t);
        }
        assert_eq!(
            serde_json::to_string(&OursOption(None)).unwrap(),
            serde_json::to_string(&None::<DateTime<Utc>>).unwrap()
        );
    }
}
