//! Time as a value: the core has no clock.
//!
//! [`Instant`] is a monotonic point the runtime builds from its own clock (microseconds since
//! any epoch it likes, e.g. the server's start); [`UnixTime`] is wall-clock time of files, in
//! seconds since 1970, which the core formats for `MDTM`, `MLSD` and `LIST` and parses from
//! `MFMT`.

use core::fmt;
use core::time::Duration;

/// A point on the runtime's monotonic clock, in microseconds since an epoch of its choosing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant {
    micros: u64,
}

impl Instant {
    /// The instant `micros` microseconds after the runtime's epoch.
    #[must_use]
    pub const fn from_micros(micros: u64) -> Self {
        Self { micros }
    }

    /// Microseconds since the runtime's epoch.
    #[must_use]
    pub const fn as_micros(self) -> u64 {
        self.micros
    }

    /// `self + d`, saturating at the end of time.
    #[must_use]
    pub fn saturating_add(self, d: Duration) -> Self {
        let add = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        Self {
            micros: self.micros.saturating_add(add),
        }
    }

    /// How long after `earlier` this is (zero if it is not after).
    #[must_use]
    pub fn saturating_duration_since(self, earlier: Self) -> Duration {
        Duration::from_micros(self.micros.saturating_sub(earlier.micros))
    }
}

/// Wall-clock time in whole seconds since 1970-01-01T00:00:00Z (negative before).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnixTime(pub i64);

/// A UTC calendar date and time of day, as FTP writes it (`YYYYMMDDHHMMSS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DateTime {
    /// Year, e.g. 2026.
    pub year: i32,
    /// Month, 1 to 12.
    pub month: u8,
    /// Day of the month, 1 to 31.
    pub day: u8,
    /// Hour, 0 to 23.
    pub hour: u8,
    /// Minute, 0 to 59.
    pub minute: u8,
    /// Second, 0 to 59 (leap seconds are not represented).
    pub second: u8,
}

/// Month abbreviations as `ls -l` prints them.
pub(crate) const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

impl UnixTime {
    /// The calendar date and time in UTC.
    #[must_use]
    pub fn to_datetime(self) -> DateTime {
        let days = self.0.div_euclid(86_400);
        let secs = self.0.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        // `secs` is in 0..86400, so the casts cannot truncate.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        DateTime {
            year,
            month,
            day,
            hour: (secs / 3600) as u8,
            minute: (secs / 60 % 60) as u8,
            second: (secs % 60) as u8,
        }
    }
}

impl DateTime {
    /// Seconds since 1970 for this date and time.
    #[must_use]
    pub fn to_unix(self) -> UnixTime {
        let days = days_from_civil(self.year, self.month, self.day);
        UnixTime(
            days * 86_400
                + i64::from(self.hour) * 3600
                + i64::from(self.minute) * 60
                + i64::from(self.second),
        )
    }

    /// Parses `YYYYMMDDHHMMSS`, optionally followed by `.` and up to three digits of
    /// milliseconds (ignored), as RFC 3659 `time-val` (`MDTM`, `MFMT`).
    ///
    /// Returns `None` for anything else, including impossible dates such as February 30.
    #[must_use]
    pub fn parse_ftp(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        if b.len() < 14 || !b[..14].iter().all(u8::is_ascii_digit) {
            return None;
        }
        if b.len() > 14 {
            let frac = &b[15..];
            if b[14] != b'.'
                || frac.is_empty()
                || frac.len() > 3
                || !frac.iter().all(u8::is_ascii_digit)
            {
                return None;
            }
        }
        let num = |r: core::ops::Range<usize>| -> u32 {
            b[r].iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0'))
        };
        // Each field has at most 4 digits, so the casts cannot truncate.
        #[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]
        let dt = Self {
            year: num(0..4) as i32,
            month: num(4..6) as u8,
            day: num(6..8) as u8,
            hour: num(8..10) as u8,
            minute: num(10..12) as u8,
            second: num(12..14) as u8,
        };
        let valid = (1..=12).contains(&dt.month)
            && dt.day >= 1
            && dt.day <= days_in_month(dt.year, dt.month)
            && dt.hour < 24
            && dt.minute < 60
            && dt.second < 60;
        valid.then_some(dt)
    }
}

impl fmt::Display for DateTime {
    /// Writes `YYYYMMDDHHMMSS`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04}{:02}{:02}{:02}{:02}{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

fn is_leap(y: i32) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i32, m: u8) -> u8 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 to (year, month, day); Howard Hinnant's `civil_from_days`.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn civil_from_days(z: i64) -> (i32, u8, u8) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let y = if m <= 2 { y + 1 } else { y };
    (
        y.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32,
        m,
        d,
    )
}

/// (year, month, day) to days since 1970-01-01; Howard Hinnant's `days_from_civil`.
fn days_from_civil(y: i32, m: u8, d: u8) -> i64 {
    let y = i64::from(y) - i64::from(m <= 2);
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::Text;
    use core::fmt;

    #[test]
    fn known_dates() {
        let dt = UnixTime(0).to_datetime();
        assert_eq!((dt.year, dt.month, dt.day, dt.hour), (1970, 1, 1, 0));
        // 2026-11-22T16:11:38Z
        let t = UnixTime(1_795_363_898);
        let dt = t.to_datetime();
        let mut s = Text::<20>::new();
        fmt::write(&mut s, format_args!("{dt}")).unwrap();
        assert_eq!(s.as_str(), "20261122161138");
        assert_eq!(dt.to_unix(), t);
        assert_eq!(UnixTime(-1).to_datetime().year, 1969);
        assert_eq!(DateTime::parse_ftp("20240229235959").unwrap().day, 29);
    }

    #[test]
    fn parse_refuses_nonsense() {
        for bad in [
            "",
            "2026112216113",
            "2026112216113x",
            "20261322161138",
            "20260230000000",
            "20261122241138",
            "20261122161160",
            "20261122161138.",
            "20261122161138.1234",
            "20261122161138,5",
        ] {
            assert_eq!(DateTime::parse_ftp(bad), None, "{bad}");
        }
        assert!(DateTime::parse_ftp("20261122161138.123").is_some());
    }

    #[test]
    fn roundtrip_many_days() {
        let mut t = -2_000_000_000i64;
        while t < 5_000_000_000 {
            assert_eq!(UnixTime(t).to_datetime().to_unix(), UnixTime(t));
            t += 86_399 * 7 + 13;
        }
    }

    #[test]
    fn instants() {
        let a = Instant::from_micros(10);
        let b = a.saturating_add(Duration::from_millis(1));
        assert_eq!(b.as_micros(), 1010);
        assert_eq!(b.saturating_duration_since(a), Duration::from_micros(1000));
        assert_eq!(a.saturating_duration_since(b), Duration::ZERO);
    }
}
