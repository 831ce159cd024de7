//! Small ID newtypes. They print with a prefix (`PA_12`, `TR_3`) and parse back from it, which is
//! how they appear in signaling and the REST API.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub u64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }

        impl FromStr for $name {
            type Err = ();
            fn from_str(s: &str) -> Result<Self, ()> {
                let digits = s.strip_prefix($prefix).ok_or(())?;
                digits.parse().map($name).map_err(|_| ())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(|_| serde::de::Error::custom(concat!("expected ", $prefix, "<number>")))
            }
        }
    };
}

prefixed_id!(
    /// One participant (one signaling session). Unique across the whole server.
    ParticipantId,
    "PA_"
);
prefixed_id!(
    /// One published track. Unique across the whole server.
    TrackId,
    "TR_"
);
prefixed_id!(
    /// One tap (a recording or broadcast sink of a track). Unique within its worker's core,
    /// which numbers taps from the same base as tracks.
    TapId,
    "TP_"
);
prefixed_id!(
    /// One room tap (a recorder's or broadcaster's hold on a whole room). Unique within its
    /// worker's core.
    RoomTapId,
    "RT_"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_text_and_json() {
        assert_eq!(TrackId(42).to_string(), "TR_42");
        assert_eq!("PA_7".parse(), Ok(ParticipantId(7)));
        assert!("TR_x".parse::<TrackId>().is_err());
        assert!("PA_7".parse::<TrackId>().is_err());
        assert_eq!(
            serde_json::to_string(&TrackId(9)).expect("json"),
            r#""TR_9""#
        );
        let owned: serde_json::Value = serde_json::json!("PA_3");
        assert_eq!(
            serde_json::from_value::<ParticipantId>(owned).expect("parses"),
            ParticipantId(3)
        );
        assert!(serde_json::from_str::<TrackId>(r#""PA_3""#).is_err());
    }
}
