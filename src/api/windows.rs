//! Rotation windows (`spec.rotation.windows`): when scheduled rotations may happen — days of
//! the week and hours, in a time zone — and the first instant at or after a given one that lies
//! in a window.

use jiff::civil::{Date, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `HH:MM`, 24-hour.
pub const HH_MM: &str = r"^([01][0-9]|2[0-3]):[0-5][0-9]$";

/// `HH:MM`, or `24:00` for the end of the day.
pub const HH_MM_END: &str = r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$";

/// When scheduled rotations (`period`, and an expiry's while one opens in time) may happen.
/// A rotation asked for with the rotate annotation happens at once, whatever the windows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RotationWindows {
    /// The IANA time zone of the windows' days and hours, such as `Europe/Berlin` or
    /// `America/New_York`; daylight saving time is followed. Default: `UTC`.
    #[serde(default = "default_time_zone")]
    #[schemars(length(min = 1, max = 64))]
    pub time_zone: String,

    /// The windows: a rotation may happen while any of them is open. 1 to 16.
    #[schemars(length(min = 1, max = 16))]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub allowed: Vec<RotationWindow>,
}

fn default_time_zone() -> String {
    "UTC".into()
}

/// One window: from `start` to `end` on each of `days`, local time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "self.start < self.end", "message": "a rotation window's end must come after its start (on the same day; 24:00 ends the day)"}
]))]
pub struct RotationWindow {
    /// The days it is open on. Default: every day.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 7), extend("x-kubernetes-list-type" = "set"))]
    pub days: Vec<Day>,

    /// When it opens, `HH:MM` (24-hour), local time.
    #[schemars(pattern(HH_MM), length(min = 5, max = 5))]
    pub start: String,

    /// When it closes, `HH:MM` after start, or `24:00` for the end of the day.
    #[schemars(pattern(HH_MM_END), length(min = 5, max = 5))]
    pub end: String,
}

/// A day of the week.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[allow(missing_docs)]
pub enum Day {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl Day {
    fn weekday(self) -> Weekday {
        match self {
            Self::Mon => Weekday::Monday,
            Self::Tue => Weekday::Tuesday,
            Self::Wed => Weekday::Wednesday,
            Self::Thu => Weekday::Thursday,
            Self::Fri => Weekday::Friday,
            Self::Sat => Weekday::Saturday,
            Self::Sun => Weekday::Sunday,
        }
    }
}

/// `HH:MM` (or `24:00`) as minutes after midnight.
fn minutes(text: &str) -> Result<i32, String> {
    let (hours, minutes) = text
        .split_once(':')
        .ok_or_else(|| format!("{text:?} is not HH:MM"))?;
    let hours: i32 = hours
        .parse()
        .map_err(|_| format!("{text:?} is not HH:MM"))?;
    let minutes: i32 = minutes
        .parse()
        .map_err(|_| format!("{text:?} is not HH:MM"))?;
    if !(0..=24).contains(&hours) || !(0..60).contains(&minutes) || (hours == 24 && minutes != 0) {
        return Err(format!("{text:?} is not a time of day"));
    }
    Ok(hours * 60 + minutes)
}

/// The instant `date` at `minutes` after midnight in `tz` (a time that daylight saving time
/// skips is taken as the instant after the gap, as `jiff`'s compatible disambiguation does).
fn at(tz: &TimeZone, date: Date, minutes: i32) -> Result<Timestamp, String> {
    let (date, minutes) = if minutes == 24 * 60 {
        (date.tomorrow().map_err(|e| e.to_string())?, 0)
    } else {
        (date, minutes)
    };
    let time = Time::new(
        i8::try_from(minutes / 60).unwrap_or(0),
        i8::try_from(minutes % 60).unwrap_or(0),
        0,
        0,
    )
    .map_err(|e| e.to_string())?;
    date.to_datetime(time)
        .to_zoned(tz.clone())
        .map(|zoned| zoned.timestamp())
        .map_err(|e| e.to_string())
}

impl RotationWindows {
    /// The time zone, or why it is not one.
    pub fn zone(&self) -> Result<TimeZone, String> {
        TimeZone::get(&self.time_zone).map_err(|_| {
            format!(
                "spec.rotation.windows.timeZone: {:?} is not an IANA time zone (such as \
                 Europe/Berlin or UTC)",
                self.time_zone
            )
        })
    }

    /// Checks what the schema cannot: the time zone is known, each window's times parse.
    pub fn validate(&self) -> Result<(), String> {
        self.zone()?;
        for (index, window) in self.allowed.iter().enumerate() {
            let start = minutes(&window.start)
                .map_err(|e| format!("spec.rotation.windows.allowed[{index}].start: {e}"))?;
            let end = minutes(&window.end)
                .map_err(|e| format!("spec.rotation.windows.allowed[{index}].end: {e}"))?;
            if end <= start {
                return Err(format!(
                    "spec.rotation.windows.allowed[{index}]: end {} must come after start {}",
                    window.end, window.start
                ));
            }
        }
        Ok(())
    }

    /// The first instant at or after `from` inside a window: `from` itself while one is open,
    /// else the next opening. `None` if the windows are invalid or never open (they always
    /// do within a week when valid).
    pub fn next_open(&self, from: Timestamp) -> Option<Timestamp> {
        let tz = self.zone().ok()?;
        let today = from.to_zoned(tz.clone()).date();
        let mut best: Option<Timestamp> = None;
        // Yesterday too: a window open until 24:00 yesterday may still be open after a shift.
        for offset in -1..=7 {
            let date = today.checked_add(offset.days()).ok()?;
            for window in &self.allowed {
                let open_day = window.days.is_empty()
                    || window.days.iter().any(|d| d.weekday() == date.weekday());
                if !open_day {
                    continue;
                }
                let start = at(&tz, date, minutes(&window.start).ok()?).ok()?;
                let end = at(&tz, date, minutes(&window.end).ok()?).ok()?;
                if end <= from {
                    continue;
                }
                let candidate = start.max(from);
                if best.is_none_or(|b| candidate < b) {
                    best = Some(candidate);
                }
            }
            if best.is_some_and(|b| b <= from) {
                break;
            }
        }
        best
    }

    /// A short description for status and `plan`: `Sat,Sun 02:00–06:00 Europe/Berlin`.
    pub fn describe(&self) -> String {
        let windows: Vec<String> = self
            .allowed
            .iter()
            .map(|window| {
                let days = if window.days.is_empty() {
                    "daily".to_owned()
                } else {
                    window
                        .days
                        .iter()
                        .map(|d| format!("{d:?}"))
                        .collect::<Vec<_>>()
                        .join(",")
                };
                format!("{days} {}–{}", window.start, window.end)
            })
            .collect();
        format!("{} {}", windows.join("; "), self.time_zone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn windows(zone: &str, allowed: &[(&[Day], &str, &str)]) -> RotationWindows {
        RotationWindows {
            time_zone: zone.into(),
            allowed: allowed
                .iter()
                .map(|(days, start, end)| RotationWindow {
                    days: days.to_vec(),
                    start: (*start).into(),
                    end: (*end).into(),
                })
                .collect(),
        }
    }

    fn ts(text: &str) -> Timestamp {
        text.parse().expect("timestamp")
    }

    #[test]
    fn inside_a_window_is_now_and_outside_is_the_next_opening() {
        // Weekends 02:00–06:00 in Berlin (UTC+1 in January).
        let weekend = windows(
            "Europe/Berlin",
            &[(&[Day::Sat, Day::Sun], "02:00", "06:00")],
        );
        assert_eq!(weekend.validate(), Ok(()));
        // Wednesday 2026-01-07 12:00 UTC: next Saturday 02:00 Berlin = 01:00 UTC.
        assert_eq!(
            weekend.next_open(ts("2026-01-07T12:00:00Z")),
            Some(ts("2026-01-10T01:00:00Z"))
        );
        // Saturday 03:00 Berlin: open, so at once.
        assert_eq!(
            weekend.next_open(ts("2026-01-10T02:00:00Z")),
            Some(ts("2026-01-10T02:00:00Z"))
        );
        // Saturday 06:00 Berlin: closed; Sunday 02:00 is next.
        assert_eq!(
            weekend.next_open(ts("2026-01-10T05:00:00Z")),
            Some(ts("2026-01-11T01:00:00Z"))
        );
        // Sunday after the window: the Saturday after.
        assert_eq!(
            weekend.next_open(ts("2026-01-11T06:00:00Z")),
            Some(ts("2026-01-17T01:00:00Z"))
        );
    }

    #[test]
    fn the_earliest_of_several_windows_and_the_end_of_the_day() {
        let two = windows(
            "UTC",
            &[(&[], "22:00", "24:00"), (&[Day::Mon], "09:00", "10:00")],
        );
        assert_eq!(two.validate(), Ok(()));
        // Monday 2026-01-05 08:00: Monday 09:00 comes before 22:00.
        assert_eq!(
            two.next_open(ts("2026-01-05T08:00:00Z")),
            Some(ts("2026-01-05T09:00:00Z"))
        );
        assert_eq!(
            two.next_open(ts("2026-01-05T10:00:00Z")),
            Some(ts("2026-01-05T22:00:00Z"))
        );
        assert_eq!(
            two.next_open(ts("2026-01-05T23:59:00Z")),
            Some(ts("2026-01-05T23:59:00Z"))
        );
        assert_eq!(two.describe(), "daily 22:00–24:00; Mon 09:00–10:00 UTC");
    }

    #[test]
    fn daylight_saving_time_is_followed() {
        // New York, 09:00–10:00 daily: 14:00 UTC in winter, 13:00 UTC in summer.
        let morning = windows("America/New_York", &[(&[], "09:00", "10:00")]);
        assert_eq!(
            morning.next_open(ts("2026-01-15T00:00:00Z")),
            Some(ts("2026-01-15T14:00:00Z"))
        );
        assert_eq!(
            morning.next_open(ts("2026-07-15T00:00:00Z")),
            Some(ts("2026-07-15T13:00:00Z"))
        );
    }

    #[test]
    fn bad_zones_and_times_name_the_field() {
        let error = windows("Mars/Olympus", &[(&[], "02:00", "03:00")])
            .validate()
            .expect_err("unknown zone");
        assert!(error.contains("spec.rotation.windows.timeZone"), "{error}");
        let error = windows("UTC", &[(&[], "05:00", "04:00")])
            .validate()
            .expect_err("backwards");
        assert!(error.contains("allowed[0]"), "{error}");
        let error = windows("UTC", &[(&[], "25:00", "26:00")])
            .validate()
            .expect_err("no time");
        assert!(error.contains("allowed[0].start"), "{error}");
        assert_eq!(
            windows("Mars/Olympus", &[(&[], "02:00", "03:00")])
                .next_open(ts("2026-01-05T00:00:00Z")),
            None
        );
    }
}
