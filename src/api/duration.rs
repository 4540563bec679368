//! Go-style durations (`90s`, `5m`, `1h30m`, `720h`, `500ms`) as they appear in the custom resources.
//!
//! Kubernetes users write durations the way `metav1.Duration` and CEL's `duration()` read them, so the
//! spec keeps the string the user wrote (a server-side apply round trip must not rewrite `90s` as
//! `1m30s`) and carries the parsed value beside it.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The pattern every duration in the CRDs must match: one or more `<number><unit>` pairs, with an
/// optional decimal fraction, and units `h`, `m`, `s`, `ms`, `us` or `ns`. Signs and a bare `0` are
/// not accepted: write `0s`.
pub const DURATION_PATTERN: &str = r"^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$";

/// The longest duration string the CRDs accept (it also bounds the CEL cost of `duration(self)`).
pub const DURATION_MAX_LENGTH: u32 = 64;

const NANOS_PER_UNIT: [(&str, u128); 6] = [
    ("ns", 1),
    ("us", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60 * 1_000_000_000),
    ("h", 3_600 * 1_000_000_000),
];

/// Go's `time.Duration` is a signed 64-bit count of nanoseconds; anything longer is refused, as the
/// API server's CEL `duration()` refuses it.
const MAX_NANOS: u128 = i64::MAX as u128;

/// Why a duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseDurationError {
    /// The string was empty.
    #[error("empty duration: write a number and a unit, such as 30s, 5m or 1h30m")]
    Empty,
    /// A number was expected at the given byte offset.
    #[error("invalid duration {input:?}: expected a number at position {position}")]
    ExpectedNumber {
        /// The whole input.
        input: String,
        /// Byte offset of the offending character.
        position: usize,
    },
    /// A number had no unit, or an unknown one.
    #[error(
        "invalid duration {input:?}: expected a unit (h, m, s, ms, us or ns) at position {position}"
    )]
    ExpectedUnit {
        /// The whole input.
        input: String,
        /// Byte offset of the offending character.
        position: usize,
    },
    /// The duration does not fit in Go's `time.Duration` (about 292 years).
    #[error("invalid duration {input:?}: longer than the maximum of 2562047h47m16.854775807s")]
    Overflow {
        /// The whole input.
        input: String,
    },
}

/// A non-negative Go-style duration such as `90s`, `5m`, `1h30m`, `720h` or `500ms`.
///
/// It serializes as the string it was parsed from. Equality, ordering and hashing compare the
/// parsed value, so `60s == 1m`.
#[derive(Clone)]
pub struct Duration {
    text: String,
    value: std::time::Duration,
}

impl Duration {
    /// Parses a Go-style duration string.
    pub fn parse(input: &str) -> Result<Self, ParseDurationError> {
        let value = parse_nanos(input)?;
        Ok(Self {
            text: input.to_owned(),
            value,
        })
    }

    /// A duration of `secs` seconds, written in the shortest Go form (`300` → `5m`).
    pub fn from_secs(secs: u64) -> Self {
        Self::from(std::time::Duration::from_secs(secs))
    }

    /// The parsed value.
    pub fn as_std(&self) -> std::time::Duration {
        self.value
    }

    /// The string as written in the resource.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the duration is zero (`0s`, `0h`, …).
    pub fn is_zero(&self) -> bool {
        self.value.is_zero()
    }
}

fn parse_nanos(input: &str) -> Result<std::time::Duration, ParseDurationError> {
    if input.is_empty() {
        return Err(ParseDurationError::Empty);
    }
    let bytes = input.as_bytes();
    let mut position = 0;
    let mut total: u128 = 0;
    let overflow = || ParseDurationError::Overflow {
        input: input.to_owned(),
    };
    while position < bytes.len() {
        // Integer part.
        let int_start = position;
        while position < bytes.len() && bytes[position].is_ascii_digit() {
            position += 1;
        }
        if position == int_start {
            return Err(ParseDurationError::ExpectedNumber {
                input: input.to_owned(),
                position,
            });
        }
        let integer = digits_value(&input[int_start..position]).ok_or_else(overflow)?;

        // Optional fraction: a dot followed by at least one digit.
        let mut fraction = "";
        if position < bytes.len() && bytes[position] == b'.' {
            let frac_start = position + 1;
            let mut end = frac_start;
            while end < bytes.len() && bytes[end].is_ascii_digit() {
                end += 1;
            }
            if end == frac_start {
                return Err(ParseDurationError::ExpectedNumber {
                    input: input.to_owned(),
                    position: frac_start,
                });
            }
            fraction = &input[frac_start..end];
            position = end;
        }

        // Unit.
        let rest = &input[position..];
        let Some((unit, nanos_per_unit)) = NANOS_PER_UNIT
            .iter()
            .filter(|(unit, _)| rest.starts_with(unit))
            .max_by_key(|(unit, _)| unit.len())
        else {
            return Err(ParseDurationError::ExpectedUnit {
                input: input.to_owned(),
                position,
            });
        };
        position += unit.len();

        let whole = integer.checked_mul(*nanos_per_unit).ok_or_else(overflow)?;
        total = total
            .checked_add(whole)
            .and_then(|t| t.checked_add(fraction_nanos(fraction, *nanos_per_unit)))
            .ok_or_else(overflow)?;
        if total > MAX_NANOS {
            return Err(overflow());
        }
    }
    // `total <= i64::MAX`, so both conversions are lossless.
    let secs = (total / 1_000_000_000) as u64;
    let nanos = (total % 1_000_000_000) as u32;
    Ok(std::time::Duration::new(secs, nanos))
}

/// The value of a run of ASCII digits, or `None` when it is too large to matter (it would overflow).
fn digits_value(digits: &str) -> Option<u128> {
    digits.bytes().try_fold(0u128, |acc, d| {
        acc.checked_mul(10)?
            .checked_add(u128::from(d - b'0'))
            .filter(|v| *v <= MAX_NANOS)
    })
}

/// Nanoseconds contributed by the decimal `fraction` of one unit, truncated like Go does.
fn fraction_nanos(fraction: &str, nanos_per_unit: u128) -> u128 {
    // A unit is at most 3.6e12 ns, so digits past the 13th cannot add a whole nanosecond.
    let significant = &fraction[..fraction.len().min(13)];
    let numerator = digits_value(significant).unwrap_or(0);
    let denominator = 10u128.pow(significant.len() as u32);
    numerator * nanos_per_unit / denominator
}

/// Formats a duration in the shortest Go-style form: `5m`, `1h30m`, `1s500ms`, `0s`.
fn format_std(value: std::time::Duration) -> String {
    let mut rest = value.as_nanos();
    if rest == 0 {
        return "0s".to_owned();
    }
    let mut text = String::new();
    for (unit, nanos_per_unit) in NANOS_PER_UNIT.iter().rev() {
        let count = rest / nanos_per_unit;
        if count > 0 {
            text.push_str(&count.to_string());
            text.push_str(unit);
            rest %= nanos_per_unit;
        }
    }
    text
}

impl From<std::time::Duration> for Duration {
    fn from(value: std::time::Duration) -> Self {
        Self {
            text: format_std(value),
            value,
        }
    }
}

impl From<Duration> for std::time::Duration {
    fn from(duration: Duration) -> Self {
        duration.value
    }
}

impl FromStr for Duration {
    type Err = ParseDurationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for Duration {
    type Error = ParseDurationError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        let value = parse_nanos(&text)?;
        Ok(Self { text, value })
    }
}

impl PartialEq for Duration {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

impl Eq for Duration {}

impl PartialOrd for Duration {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Duration {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.value.cmp(&other.value)
    }
}

impl std::hash::Hash for Duration {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.value.hash(state);
    }
}

impl fmt::Debug for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Duration({:?})", self.text)
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::try_from(text).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Duration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        // Not `format: duration`: that means ISO 8601 (`PT5M`), which is not what users write.
        json_schema!({
            "type": "string",
            "pattern": DURATION_PATTERN,
            "maxLength": DURATION_MAX_LENGTH,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration as Std;

    fn parsed(s: &str) -> Std {
        match Duration::parse(s) {
            Ok(d) => d.as_std(),
            Err(e) => panic!("{s:?} should parse: {e}"),
        }
    }

    #[test]
    fn parses_the_forms_users_write() {
        assert_eq!(parsed("90s"), Std::from_secs(90));
        assert_eq!(parsed("5m"), Std::from_secs(300));
        assert_eq!(parsed("1h30m"), Std::from_secs(5400));
        assert_eq!(parsed("720h"), Std::from_secs(720 * 3600));
        assert_eq!(parsed("500ms"), Std::from_millis(500));
        assert_eq!(parsed("1.5h"), Std::from_secs(5400));
        assert_eq!(parsed("2h45m30s"), Std::from_secs(2 * 3600 + 45 * 60 + 30));
        assert_eq!(parsed("10us"), Std::from_micros(10));
        assert_eq!(parsed("7ns"), Std::from_nanos(7));
        assert_eq!(parsed("1m1m"), Std::from_secs(120));
        assert_eq!(parsed("0.000000001s"), Std::from_nanos(1));
    }

    #[test]
    fn zero_is_a_valid_duration() {
        for zero in ["0s", "0h", "0ms", "0.0s", "0h0m0s"] {
            let d = Duration::parse(zero).unwrap();
            assert!(d.is_zero(), "{zero}");
            assert_eq!(d.as_std(), Std::ZERO);
        }
    }

    #[test]
    fn refuses_what_the_crd_pattern_refuses() {
        for bad in [
            "", "0", "5", "m", "-5m", "+5m", "5 m", " 5m", "5m ", "5M", "1d", "1w", "1.h", ".5h",
            "5mm", "1h30", "µs", "5µs", "PT5M", "1e3s",
        ] {
            assert!(Duration::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn refuses_durations_longer_than_go_allows() {
        assert!(Duration::parse("2562047h").is_ok());
        assert!(matches!(
            Duration::parse("2562048h"),
            Err(ParseDurationError::Overflow { .. })
        ));
        assert!(matches!(
            Duration::parse("99999999999999999999999999999999999999999h"),
            Err(ParseDurationError::Overflow { .. })
        ));
    }

    #[test]
    fn errors_say_where_and_what() {
        let err = Duration::parse("5x").unwrap_err().to_string();
        assert!(err.contains("expected a unit"), "{err}");
        let err = Duration::parse("5mx").unwrap_err().to_string();
        assert!(err.contains("expected a number at position 2"), "{err}");
    }

    #[test]
    fn serializes_as_written_and_compares_by_value() {
        let written: Duration = serde_json::from_str("\"90s\"").unwrap();
        assert_eq!(serde_json::to_string(&written).unwrap(), "\"90s\"");
        assert_eq!(written.to_string(), "90s");
        assert_eq!(written, Duration::parse("1m30s").unwrap());
        assert!(Duration::parse("1m").unwrap() < Duration::parse("61s").unwrap());
        assert!(serde_json::from_str::<Duration>("\"5 minutes\"").is_err());
        assert!(serde_json::from_str::<Duration>("300").is_err());
    }

    #[test]
    fn formats_std_durations_in_the_shortest_form() {
        assert_eq!(Duration::from_secs(300).as_str(), "5m");
        assert_eq!(Duration::from_secs(5400).as_str(), "1h30m");
        assert_eq!(Duration::from_secs(0).as_str(), "0s");
        assert_eq!(Duration::from(Std::from_millis(1500)).as_str(), "1s500ms");
        assert_eq!(Duration::from(Std::from_nanos(1_001)).as_str(), "1us1ns");
        for secs in [0, 1, 59, 60, 61, 3599, 3600, 86_400, 2_592_000] {
            let d = Duration::from_secs(secs);
            assert_eq!(
                Duration::parse(d.as_str()).unwrap().as_std(),
                Std::from_secs(secs)
            );
        }
    }

    #[test]
    fn pattern_and_parser_agree() {
        // The API server enforces the CRD pattern and the operator the parser: a string one
        // accepts and the other refuses would wedge a resource.
        let schema =
            serde_json::to_value(Duration::json_schema(&mut SchemaGenerator::default())).unwrap();
        for s in [
            "90s", "5m", "1h30m", "0s", "1.5h", "500ms", "1m1m", "10us", "7ns", "0", "1.h", ".5h",
            "5M", "-1s", "", "1d", "5m ", "1h30",
        ] {
            let by_pattern = jsonschema::is_valid(&schema, &serde_json::json!(s));
            assert_eq!(by_pattern, Duration::parse(s).is_ok(), "{s:?}");
        }
    }
}
