//! Durations (`"2.5s"`) and the tolerances around them (`"500ms"`, `"10%"`).

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A duration written as `"15s"`, `"2.5s"`, `"1500ms"`, `"2m"`: from zero to [`Span::MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Span(pub Duration);

impl Span {
    /// The longest duration a claim file may give: a day. The longest claim of the
    /// catalog takes about 15 minutes; the bound keeps every sum and product of spans
    /// (deadlines, windows, tolerances) far from overflowing.
    pub const MAX: Duration = Duration::from_secs(24 * 60 * 60);

    /// Parses `"2.5s"`, `"1500ms"`, `"2m"`, `"100us"`; refuses what is not a finite,
    /// non-negative duration of at most [`Span::MAX`].
    pub fn parse(text: &str) -> Result<Self, String> {
        let (number, unit) = number_and_unit(text);
        let n: f64 = number.parse().map_err(|_| {
            format!(
                "{text:?} is not a duration: write it as \"15s\", \"2.5s\", \"1500ms\" or \"2m\""
            )
        })?;
        let scale = match unit.trim() {
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "m" | "min" => 60.0,
            other => {
                return Err(format!(
                    "{text:?}: unknown unit {other:?} (use s, ms, us or m)"
                ))
            }
        };
        let secs = n * scale;
        // Only digits and '.' reach the number: it is never negative or NaN, but may be
        // too large for an f64 ("1" and 400 zeros is infinite).
        if !secs.is_finite() || secs > Self::MAX.as_secs_f64() {
            return Err(format!(
                "{text:?} is longer than a day, the longest duration a claim may give"
            ));
        }
        Duration::try_from_secs_f64(secs)
            .map(Span)
            .map_err(|e| format!("{text:?}: {e}"))
    }
}

/// `"2.5ms"` as (`"2.5"`, `"ms"`): the leading digits and dots, then the rest (trimmed).
pub(crate) fn number_and_unit(text: &str) -> (&str, &str) {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    t.split_at(split)
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.3} s", self.0.as_secs_f64())
    }
}

impl Serialize for Span {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}ms", self.0.as_secs_f64() * 1000.0))
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Span::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// `"500ms"`, `"10%"`, or `["500ms", "10%"]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    untagged,
    expecting = "a tolerance is a duration (\"500ms\"), a percentage of expect.duration (\"10%\"), or both ([\"500ms\", \"10%\"]: the larger applies)"
)]
pub enum ToleranceSpec {
    /// One part.
    One(String),
    /// The larger of several.
    Max(Vec<String>),
}

impl ToleranceSpec {
    /// The tolerance around `expected`: the largest of the parts. A part is a duration
    /// (at most [`Span::MAX`]) or a percentage from 0 % to 100 %; anything else is an
    /// error that says so.
    pub fn around(&self, expected: Duration) -> Result<Duration, String> {
        let parts: Vec<&str> = match self {
            Self::One(s) => vec![s.as_str()],
            Self::Max(v) => v.iter().map(String::as_str).collect(),
        };
        if parts.is_empty() {
            return Err("an empty list gives no tolerance: give \"500ms\", \"10%\" or both".into());
        }
        parts.iter().try_fold(Duration::ZERO, |acc, p| {
            let part = match p.trim().strip_suffix('%') {
                Some(pct) => {
                    let pct: f64 = pct
                        .trim()
                        .parse()
                        .map_err(|_| format!("tolerance {p:?}: not a percentage"))?;
                    if !(0.0..=100.0).contains(&pct) {
                        return Err(format!("tolerance {p:?}: a percentage is from 0% to 100%"));
                    }
                    Duration::try_from_secs_f64(expected.as_secs_f64() * pct / 100.0)
                        .map_err(|e| format!("tolerance {p:?}: {e}"))?
                }
                None => Span::parse(p).map_err(|e| format!("tolerance {e}"))?.0,
            };
            Ok(acc.max(part))
        })
    }
}
