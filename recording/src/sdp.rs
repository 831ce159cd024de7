//! The SDP file that tells the sidecar where each RTP stream arrives and in which codec.

use std::fmt::Write;

use tern_sfu::TapCodec;

use crate::rtp::payload_type;

/// One stream of the sidecar's input: its loopback port (RTCP on the next one) and codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputStream {
    /// The RTP port; sender reports go to `port + 1`.
    pub port: u16,
    /// The codec.
    pub codec: TapCodec,
}

/// The SDP describing `streams`, in order (ffmpeg numbers its input streams the same way).
pub fn input_sdp(streams: &[InputStream]) -> String {
    let mut sdp = String::from(
        "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=tern recording\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n",
    );
    for s in streams {
        let pt = payload_type(s.codec);
        let (media, rtpmap) = match s.codec {
            TapCodec::Opus => ("audio", "opus/48000/2"),
            TapCodec::Vp8 => ("video", "VP8/90000"),
            TapCodec::H264 => ("video", "H264/90000"),
        };
        // Sender reports come on the RTP port, in order with the packets (RFC 5761).
        let _ = write!(
            sdp,
            "m={media} {} RTP/AVP {pt}\r\na=rtcp-mux\r\na=rtpmap:{pt} {rtpmap}\r\n",
            s.port
        );
        if s.codec == TapCodec::H264 {
            let _ = write!(sdp, "a=fmtp:{pt} packetization-mode=1\r\n");
        }
    }
    sdp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stream_gets_an_m_line_with_its_port_and_codec() {
        let sdp = input_sdp(&[
            InputStream {
                port: 40_000,
                codec: TapCodec::Opus,
            },
            InputStream {
                port: 40_002,
                codec: TapCodec::Vp8,
            },
            InputStream {
                port: 40_004,
                codec: TapCodec::H264,
            },
        ]);
        assert!(sdp.starts_with("v=0\r\n"));
        assert!(sdp.contains("c=IN IP4 127.0.0.1\r\n"));
        assert!(
            sdp.contains(
                "m=audio 40000 RTP/AVP 111\r\na=rtcp-mux\r\na=rtpmap:111 opus/48000/2\r\n"
            )
        );
        assert!(
            sdp.contains("m=video 40002 RTP/AVP 96\r\na=rtcp-mux\r\na=rtpmap:96 VP8/90000\r\n")
        );
        assert!(sdp.contains(
            "m=video 40004 RTP/AVP 102\r\na=rtcp-mux\r\na=rtpmap:102 H264/90000\r\na=fmtp:102 packetization-mode=1\r\n"
        ));
        let audio = sdp.find("m=audio").expect("audio");
        assert!(audio < sdp.find("m=video").expect("video"), "in order");
    }
}
