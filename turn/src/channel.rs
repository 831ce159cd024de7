//! TURN ChannelData messages (RFC 8656 section 12.4).

/// Lowest channel number a client may bind.
pub const CHANNEL_MIN: u16 = 0x4000;
/// Highest channel number a client may bind. RFC 8656 narrowed the range to 0x4FFF, but RFC 5766
/// clients (coturn's among them) still pick numbers up to 0x7FFF, so the old range is accepted.
pub const CHANNEL_MAX: u16 = 0x7FFF;

/// A ChannelData message borrowing its datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelData<'a> {
    /// The channel number.
    pub channel: u16,
    /// The application data.
    pub data: &'a [u8],
}

impl<'a> ChannelData<'a> {
    /// Parses a ChannelData message. Over UDP the datagram may carry up to 3 padding bytes.
    pub fn parse(datagram: &'a [u8]) -> Option<Self> {
        let channel = u16::from_be_bytes([*datagram.first()?, *datagram.get(1)?]);
        let len = u16::from_be_bytes([*datagram.get(2)?, *datagram.get(3)?]) as usize;
        if !(CHANNEL_MIN..=CHANNEL_MAX).contains(&channel) {
            return None;
        }
        let data = datagram.get(4..4 + len)?;
        let extra = datagram.len() - 4 - len;
        (extra <= 3).then_some(Self { channel, data })
    }

    /// Writes a ChannelData message into `out`; returns its length. `pad` rounds it up to a
    /// multiple of 4 bytes, as stream transports require (over UDP padding is optional).
    pub fn write(channel: u16, data: &[u8], out: &mut [u8], pad: bool) -> Option<usize> {
        let len = u16::try_from(data.len()).ok()?;
        let total = if pad {
            (4 + data.len() + 3) & !3
        } else {
            4 + data.len()
        };
        let out = out.get_mut(..total)?;
        out[0..2].copy_from_slice(&channel.to_be_bytes());
        out[2..4].copy_from_slice(&len.to_be_bytes());
        out[4..4 + data.len()].copy_from_slice(data);
        out[4 + data.len()..].fill(0);
        Some(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_data_round_trips_and_rejects_bad_framing() {
        let mut buf = [0u8; 16];
        let n = ChannelData::write(0x4001, b"hello", &mut buf, true).expect("fits");
        assert_eq!(
            ChannelData::write(0x4001, b"hello", &mut [0u8; 16], false),
            Some(9)
        );
        assert_eq!(n, 12);
        assert_eq!(
            ChannelData::parse(&buf[..n]),
            Some(ChannelData {
                channel: 0x4001,
                data: b"hello"
            })
        );
        assert_eq!(
            ChannelData::parse(&buf[..9]),
            Some(ChannelData {
                channel: 0x4001,
                data: b"hello"
            })
        );
        assert_eq!(
            ChannelData::parse(&buf[..8]),
            None,
            "shorter than its length"
        );
        assert_eq!(
            ChannelData::parse(&[0x3F, 0xFF, 0, 0]),
            None,
            "channel below range"
        );
        assert_eq!(
            ChannelData::parse(&[0x80, 0x00, 0, 0]),
            None,
            "channel above range"
        );
        assert_eq!(
            ChannelData::parse(&[0x40, 0x00, 0, 0, 1, 2, 3, 4]),
            None,
            "too much trailing data"
        );
        assert_eq!(ChannelData::parse(&[0x40]), None);
    }
}
