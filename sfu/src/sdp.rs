//! Finishing touches on the SDP str0m writes, so that a client written from the RFCs alone can
//! use it:
//!
//! - every m-line that is not rejected carries the transport: the ICE candidates, the default
//!   candidate's address in its `m=` and `c=` lines, and `a=end-of-candidates`, because tern is
//!   ICE-lite and knows all its candidates up front (RFC 8829 sections 5.2.1 and 5.3.1, RFC 8843,
//!   RFC 8840 section 8.2). str0m writes candidates in the first m-line only, on port 9;
//! - a subscriber m-line offers only the payload types its track can be sent in.
//!
//! The input is str0m's own output, but the functions never panic on odd text.

use std::collections::HashMap;
use std::fmt::Write;

/// Payload types to keep, per mid. An m-line whose mid is absent keeps all of its own.
pub(crate) type KeepPts = HashMap<String, Vec<u8>>;

/// Rewrites `sdp` so that every m-line that is not rejected carries every candidate of the
/// description, and keeps only the payload types in `keep` for the mids it names.
pub(crate) fn complete(sdp: &str, keep: &KeepPts) -> String {
    let lines: Vec<&str> = sdp.lines().map(|l| l.trim_end_matches('\r')).collect();
    let candidates: Vec<&str> = dedup(
        lines
            .iter()
            .copied()
            .filter(|l| l.starts_with("a=candidate:")),
    );
    let default = default_address(&candidates);
    let mut out = String::with_capacity(sdp.len() + 256 * candidates.len());
    let mut sections = split_sections(&lines);
    let session = sections.remove(0);
    for line in session {
        if !is_transport_line(line) {
            push(&mut out, line);
        }
    }
    for section in sections {
        write_section(&mut out, &section, &candidates, default.as_ref(), keep);
    }
    out
}

/// The `(ip, port)` of the highest-priority candidate, UDP first (the default candidate of RFC
/// 8445 section 5.1.4 and RFC 8839 section 4.2.1).
fn default_address(candidates: &[&str]) -> Option<(String, u16)> {
    candidates
        .iter()
        .filter_map(|c| {
            let f: Vec<&str> = c.split_whitespace().collect();
            let (proto, prio, ip, port) = (f.get(2)?, f.get(3)?, f.get(4)?, f.get(5)?);
            let udp = proto.eq_ignore_ascii_case("udp");
            Some((
                (udp, prio.parse::<u32>().ok()?),
                (*ip, port.parse::<u16>().ok()?),
            ))
        })
        .max_by_key(|(rank, _)| *rank)
        .map(|(_, (ip, port))| (ip.to_string(), port))
}

fn write_section(
    out: &mut String,
    section: &[&str],
    candidates: &[&str],
    default: Option<&(String, u16)>,
    keep: &KeepPts,
) {
    let mid = section
        .iter()
        .find_map(|l| l.strip_prefix("a=mid:"))
        .unwrap_or("");
    let keep = keep.get(mid);
    let Some((m_line, rest)) = section.split_first() else {
        return;
    };
    let port = default.map(|(_, port)| port.to_string());
    let mut fields: Vec<&str> = m_line.split(' ').collect();
    // Never trim an m-line down to no format at all: that would be invalid SDP.
    let offered = |k: &Vec<u8>| {
        fields
            .iter()
            .skip(3)
            .any(|f| f.parse::<u8>().is_ok_and(|pt| k.contains(&pt)))
    };
    let keep = keep.filter(|k| offered(k));
    let rejected = fields.get(1).is_none_or(|p| *p == "0");
    let live = !rejected && default.is_some();
    if let (true, Some(port)) = (live, &port) {
        fields[1] = port;
    }
    write_m_line(out, &fields, keep);
    for line in rest {
        if is_transport_line(line) || !keeps_pt(line, keep) {
            continue;
        }
        match (line.starts_with("c="), live, default) {
            (true, true, Some((ip, _))) => {
                let family = if ip.contains(':') { "IP6" } else { "IP4" };
                let _ = write!(out, "c=IN {family} {ip}\r\n");
            }
            _ => push(out, line),
        }
    }
    if live {
        for c in candidates {
            push(out, c);
        }
        push(out, "a=end-of-candidates");
    }
}

fn write_m_line(out: &mut String, fields: &[&str], keep: Option<&Vec<u8>>) {
    let mut first = true;
    for (i, f) in fields.iter().enumerate() {
        // Fields 3.. are the formats (payload types).
        if i >= 3 && keep.is_some_and(|k| f.parse::<u8>().is_ok_and(|pt| !k.contains(&pt))) {
            continue;
        }
        if !first {
            out.push(' ');
        }
        out.push_str(f);
        first = false;
    }
    out.push_str("\r\n");
}

/// False for an `rtpmap`, `fmtp` or `rtcp-fb` line of a payload type that is not kept.
fn keeps_pt(line: &str, keep: Option<&Vec<u8>>) -> bool {
    let Some(keep) = keep else { return true };
    let rest = ["a=rtpmap:", "a=fmtp:", "a=rtcp-fb:"]
        .iter()
        .find_map(|p| line.strip_prefix(p));
    let Some(rest) = rest else { return true };
    let pt = rest.split(' ').next().and_then(|p| p.parse::<u8>().ok());
    pt.is_none_or(|pt| keep.contains(&pt))
}

/// Candidates and their end marker: written again per m-line.
fn is_transport_line(line: &str) -> bool {
    line.starts_with("a=candidate:") || line == "a=end-of-candidates"
}

/// The session part, then one slice per `m=` section.
fn split_sections<'a>(lines: &[&'a str]) -> Vec<Vec<&'a str>> {
    let mut sections = vec![Vec::new()];
    for line in lines.iter().filter(|l| !l.is_empty()) {
        if line.starts_with("m=") {
            sections.push(Vec::new());
        }
        if let Some(s) = sections.last_mut() {
            s.push(*line);
        }
    }
    sections
}

fn dedup<'a>(lines: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut seen = Vec::new();
    for l in lines {
        if !seen.contains(&l) {
            seen.push(l);
        }
    }
    seen
}

fn push(out: &mut String, line: &str) {
    out.push_str(line);
    out.push_str("\r\n");
}

/// The `a=ice-ufrag` and the `a=mid`s, in order, of a remote description.
pub(crate) fn remote_transport(sdp: &str) -> (Option<String>, Vec<String>) {
    let mut ufrag = None;
    let mut mids = Vec::new();
    for line in sdp.lines().map(|l| l.trim_end_matches('\r')) {
        if let Some(u) = line.strip_prefix("a=ice-ufrag:") {
            ufrag.get_or_insert_with(|| u.trim().to_string());
        } else if let Some(m) = line.strip_prefix("a=mid:") {
            mids.push(m.trim().to_string());
        }
    }
    (ufrag, mids)
}

/// The audio and video m-lines of a description, whatever their direction or port: each one's
/// mid (empty when it has none) and whether it is video. Permission checks use every one, so
/// that no reading of directions or bundling can differ from the SDP stack's.
pub(crate) fn media_lines(sdp: &str) -> Vec<(String, bool)> {
    let lines: Vec<&str> = sdp.lines().map(|l| l.trim_end_matches('\r')).collect();
    let mut out = Vec::new();
    for section in split_sections(&lines).into_iter().skip(1) {
        let fields: Vec<&str> = section
            .first()
            .and_then(|m| m.strip_prefix("m="))
            .map(|m| m.split_whitespace().collect())
            .unwrap_or_default();
        let video = match fields.first() {
            Some(&"audio") => false,
            Some(&"video") => true,
            _ => continue,
        };
        let mid = section.iter().find_map(|l| l.strip_prefix("a=mid:"));
        out.push((mid.unwrap_or_default().trim().to_string(), video));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_lines_lists_every_audio_and_video_m_line() {
        let offer = "v=0\r\ns=-\r\n\
            m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=sendonly\r\n\
            m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\n\
            m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:2\r\na=inactive\r\n\
            m=video 0 UDP/TLS/RTP/SAVPF 96\r\na=mid:3\r\na=sendonly\r\n\
            m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:4\r\n\
            m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=sendonly\r\na=recvonly\r\n";
        let expected: Vec<(String, bool)> = [
            ("0", false),
            ("1", true),
            ("2", true),
            ("3", true),
            ("", false),
        ]
        .iter()
        .map(|(m, v)| (m.to_string(), *v))
        .collect();
        assert_eq!(media_lines(offer), expected);
    }

    const STR0M_OFFER: &str = "v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n\
        a=group:BUNDLE 0 1 2\r\na=ice-lite\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\n\
        a=candidate:1 1 udp 2130706175 127.0.0.1 7882 typ host\r\n\
        a=candidate:2 1 tcp 1694498815 127.0.0.1 7882 typ host tcptype passive\r\n\
        a=ice-ufrag:u\r\na=mid:0\r\na=sendonly\r\na=rtpmap:111 opus/48000/2\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103\r\nc=IN IP4 0.0.0.0\r\na=ice-ufrag:u\r\na=mid:1\r\na=sendonly\r\n\
        a=rtpmap:96 VP8/90000\r\na=rtcp-fb:96 nack pli\r\na=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\n\
        a=rtpmap:102 H264/90000\r\na=fmtp:102 profile-level-id=42e01f\r\na=rtcp-fb:102 nack\r\n\
        a=rtpmap:103 rtx/90000\r\na=fmtp:103 apt=102\r\n\
        m=video 0 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:2\r\na=inactive\r\n\
        a=rtpmap:96 VP8/90000\r\n";

    fn section<'a>(sdp: &'a str, mid: &str) -> Vec<&'a str> {
        let lines: Vec<&str> = sdp.split("\r\n").collect();
        split_sections(&lines)
            .into_iter()
            .find(|s| s.contains(&format!("a=mid:{mid}").as_str()))
            .expect("section")
    }

    #[test]
    fn every_live_m_line_carries_the_candidates_and_the_default_address() {
        let out = complete(STR0M_OFFER, &KeepPts::new());
        for mid in ["0", "1"] {
            let s = section(&out, mid);
            assert!(s[0].contains(" 7882 "), "{mid}: {}", s[0]);
            assert!(s.contains(&"c=IN IP4 127.0.0.1"), "{mid}");
            assert_eq!(
                s.iter().filter(|l| l.starts_with("a=candidate:")).count(),
                2
            );
            assert_eq!(s.last(), Some(&"a=end-of-candidates"));
        }
    }

    #[test]
    fn a_rejected_m_line_stays_on_port_zero_without_candidates() {
        let out = complete(STR0M_OFFER, &KeepPts::new());
        let s = section(&out, "2");
        assert!(s[0].starts_with("m=video 0 "));
        assert!(!s.iter().any(|l| l.starts_with("a=candidate")));
        assert!(!s.contains(&"a=end-of-candidates"));
    }

    #[test]
    fn only_the_kept_payload_types_are_offered() {
        let keep = KeepPts::from([("1".to_string(), vec![96, 97])]);
        let out = complete(STR0M_OFFER, &keep);
        let s = section(&out, "1");
        assert_eq!(s[0], "m=video 7882 UDP/TLS/RTP/SAVPF 96 97");
        assert!(s.contains(&"a=fmtp:97 apt=96"));
        assert!(!s.iter().any(|l| l.contains("102") || l.contains("103")));
        // Other m-lines are untouched.
        assert!(section(&out, "0").contains(&"a=rtpmap:111 opus/48000/2"));
    }

    #[test]
    fn the_result_is_still_parsed_by_str0m() {
        let out = complete(STR0M_OFFER, &KeepPts::new());
        if let Err(e) = str0m::change::SdpOffer::from_sdp_string(&out) {
            panic!("{e}")
        }
        assert!(out.ends_with("\r\n") && !out.contains("\r\n\r\n"));
    }

    #[test]
    fn an_m_line_is_never_left_without_formats() {
        let keep = KeepPts::from([("1".to_string(), vec![120, 121])]);
        let out = complete(STR0M_OFFER, &keep);
        assert_eq!(
            section(&out, "1")[0],
            "m=video 7882 UDP/TLS/RTP/SAVPF 96 97 102 103"
        );
    }

    #[test]
    fn odd_text_does_not_panic() {
        for s in [
            "",
            "m=",
            "m=audio",
            "v=0\r\nm=audio 9\r\na=candidate:x",
            "a=mid:\r\n\r\n",
        ] {
            let _ = complete(s, &KeepPts::from([(String::new(), vec![1])]));
        }
    }

    #[test]
    fn reads_the_remote_ufrag_and_mids() {
        let (ufrag, mids) = remote_transport(STR0M_OFFER);
        assert_eq!(ufrag.as_deref(), Some("u"));
        assert_eq!(mids, ["0", "1", "2"]);
    }
}
