//! Points in time as the contract writes them: RFC 3339, UTC, to the second
//! (`2026-11-28T02:00:00Z`). Kept as unix seconds until written, so that readers (the
//! exporter's timestamps, a certificate's days left) never parse back what the engine wrote.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Unix seconds, written as RFC 3339 UTC. The default is the epoch (a view made before any
/// probe).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    pub const fn from_unix(secs: i64) -> Timestamp {
        Timestamp(secs)
    }

    pub fn now() -> Timestamp {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        Timestamp(secs)
    }

    pub const fn unix(self) -> i64 {
        self.0
    }

    /// Parse what `Display` writes (fractions of a second and offsets are accepted and
    /// folded into UTC seconds), or the out-of-range form.
    pub fn parse(text: &str) -> Option<Timestamp> {
        if let Some(rest) = text.strip_prefix('@') {
            let secs = rest.strip_suffix(OUT_OF_RANGE)?;
            return secs.parse().ok().map(Timestamp);
        }
        OffsetDateTime::parse(text, &Rfc3339)
            .ok()
            .map(|t| Timestamp(t.unix_timestamp()))
    }
}

const OUT_OF_RANGE: &str = " (out of range)";

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // RFC 3339 covers years 0000-9999; a certificate can claim more (GeneralizedTime is
        // untrusted input), and the text must say so rather than fail or lie.
        match OffsetDateTime::from_unix_timestamp(self.0)
            .ok()
            .and_then(|t| t.format(&Rfc3339).ok())
        {
            Some(text) => f.write_str(&text),
            None => write!(f, "@{}{OUT_OF_RANGE}", self.0),
        }
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Timestamp::parse(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("not an RFC 3339 time: {text:?}")))
    }
}

/// `Option<Timestamp>` written as the time or as `""` (the contract's certificate dates when
/// no certificate could be read).
pub mod empty_if_none {
    use super::*;

    pub fn serialize<S: Serializer>(t: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => t.serialize(s),
            None => s.serialize_str(""),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
        let text = String::deserialize(d)?;
        if text.is_empty() {
            return Ok(None);
        }
        Timestamp::parse(&text)
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom(format!("not an RFC 3339 time: {text:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_reads_rfc3339() {
        let cases = [
            (0, "1970-01-01T00:00:00Z"),
            (1_798_761_600, "2027-01-01T00:00:00Z"),
            (-1, "1969-12-31T23:59:59Z"),
        ];
        for (secs, text) in cases {
            let t = Timestamp::from_unix(secs);
            assert_eq!(t.to_string(), text);
            assert_eq!(Timestamp::parse(text), Some(t));
            assert_eq!(serde_json::to_string(&t).unwrap(), format!("\"{text}\""));
        }
        assert_eq!(
            Timestamp::parse("2000-02-29T12:30:15.250Z"),
            Some(Timestamp::from_unix(951_827_415))
        );
        assert_eq!(Timestamp::parse("2027-01-01 00:00:00"), None);
        assert_eq!(Timestamp::parse(""), None);
        assert_eq!(Timestamp::parse("2027-13-01T00:00:00Z"), None);
    }

    #[test]
    fn out_of_range_years_say_so() {
        let far = Timestamp::from_unix(400_000_000_000);
        assert_eq!(far.to_string(), "@400000000000 (out of range)");
        assert_eq!(Timestamp::parse(&far.to_string()), Some(far));
    }
}
