//! Small ID newtypes. They print with a prefix (`PA_12`, `TR_3`) and parse back from it, which is
//! how they appear in signaling and the REST API.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A map keyed by the server's own ids, which it hands out and peers never choose: hashed with
/// one multiply instead of SipHash, whose resistance to chosen keys they do not need. The
/// forwarding path looks up a subscriber and its subscription for every copy it makes.
pub type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// The hasher of [`IdMap`] (Fibonacci hashing of each word written).
#[derive(Clone, Copy, Debug, Default)]
pub struct IdHasher(u64);

impl IdHasher {
    fn mix(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.mix(u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.mix(n);
    }
}

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
    use std::hash::BuildHasher;

    #[test]
    fn ids_handed_out_in_sequence_spread_over_every_bucket_and_the_tag_bits() {
        let build = BuildHasherDefault::<IdHasher>::default();
        let hashes: Vec<u64> = (1..=64).map(|n| build.hash_one(ParticipantId(n))).collect();
        // hashbrown picks the bucket from the low bits and a tag from the top 7.
        let buckets: std::collections::HashSet<u64> = hashes.iter().map(|h| h % 64).collect();
        let tags: std::collections::HashSet<u64> = hashes.iter().map(|h| h >> 57).collect();
        assert_eq!(buckets.len(), 64, "64 ids, 64 buckets");
        assert!(tags.len() > 32, "tags spread: {}", tags.len());
        let mut map = IdMap::default();
        for n in 1..=1000 {
            map.insert(TrackId(n), n);
        }
        assert!((1..=1000).all(|n| map.get(&TrackId(n)) == Some(&n)));
    }

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
