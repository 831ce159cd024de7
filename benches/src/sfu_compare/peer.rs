//! One WebRTC connection of a load client: a str0m `Rtc` in RTP mode (Opus and VP8, nothing is
//! ever encoded or decoded) on its own loopback UDP socket. It is driven only when its socket
//! is readable or str0m's next timeout is due, so an idle or receive-only connection costs
//! nothing between packets.

use std::net::SocketAddr;
use std::time::Instant;

use str0m::change::{SdpOffer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, Mid, Pt, Simulcast, SimulcastLayer};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{RtpPacket, RtpWrite};
use str0m::{Candidate, Event, Input, Output, Rtc, RtcError};
use tokio::net::UdpSocket;

/// Socket buffer size asked for: bursts of a meeting's video must not overflow it while the
/// client's task waits for a core.
const SOCKET_BUFFER: usize = 1 << 20;
/// Datagrams read per wake-up at most, so one busy connection cannot starve the others.
const READS_PER_WAKE: usize = 64;

/// A str0m connection and its socket.
pub struct Peer {
    /// The connection (for its SDP API).
    pub rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    next_timeout: Instant,
    /// Datagrams the kernel would not take from us (a full send buffer).
    pub send_drops: u64,
    /// Datagrams received and sent.
    pub datagrams: (u64, u64),
    /// Received datagrams dropped on purpose (see [`Peer::set_loss`]).
    pub dropped: u64,
    loss: f64,
    rng: u64,
    buf: Vec<u8>,
}

impl Peer {
    /// A new connection with a microphone and a camera to send (simulcast on `rids`, lowest
    /// first, if any): the connection, the audio and video mids, and the offer for them.
    pub fn publishing(
        rids: &[&str],
    ) -> Result<(Peer, Mid, Mid, SdpOffer, SdpPendingOffer), super::Error> {
        let mut peer = Peer::new()?;
        let mut api = peer.rtc.sdp_api();
        let audio = api.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
        let simulcast = (!rids.is_empty()).then(|| {
            let mut s = Simulcast::new();
            for rid in rids {
                s.add_send_layer(SimulcastLayer::new(rid));
            }
            s
        });
        let video = api.add_media(MediaKind::Video, Direction::SendOnly, None, None, simulcast);
        let (offer, pending) = api.apply().ok_or("no offer to make")?;
        Ok((peer, audio, video, offer, pending))
    }

    /// A new connection with a host candidate on a fresh 127.0.0.1 port. Call within a tokio
    /// runtime.
    pub fn new() -> std::io::Result<Peer> {
        let socket = socket2::Socket::new(
            socket2::Domain::IPV4,
            socket2::Type::DGRAM,
            Some(socket2::Protocol::UDP),
        )?;
        let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
        let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
        socket.set_nonblocking(true)?;
        let any: SocketAddr = "127.0.0.1:0".parse().expect("address");
        socket.bind(&any.into())?;
        let socket = UdpSocket::from_std(socket.into())?;
        let local = socket.local_addr()?;
        let mut rtc = Rtc::builder()
            .set_rtp_mode(true)
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
            .build(Instant::now());
        let candidate =
            Candidate::host(local, "udp").map_err(|e| std::io::Error::other(e.to_string()))?;
        rtc.add_local_candidate(candidate);
        Ok(Peer {
            rtc,
            socket,
            local,
            next_timeout: Instant::now(),
            send_drops: 0,
            datagrams: (0, 0),
            dropped: 0,
            loss: 0.0,
            rng: 1,
            buf: vec![0; 2048],
        })
    }

    /// Makes the connection drop this share (0 to 1) of the datagrams it receives, at random
    /// (`seed` picks the sequence), before str0m sees them: a lossy downlink.
    pub fn set_loss(&mut self, share: f64, seed: u64) {
        self.loss = share;
        // Any odd multiple of the golden ratio is a non-zero xorshift state.
        self.rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    }

    /// Whether to drop the next datagram (xorshift64*).
    fn drop_next(&mut self) -> bool {
        if self.loss <= 0.0 {
            return false;
        }
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let x = self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11;
        (x as f64 / (1u64 << 53) as f64) < self.loss
    }

    /// Waits until the socket is readable or the next timeout is due. Cancel-safe: nothing is
    /// read here; call [`Peer::pump`] after it returns.
    pub async fn ready(&self) {
        tokio::select! {
            _ = self.socket.readable() => {}
            _ = tokio::time::sleep_until(self.next_timeout.into()) => {}
        }
    }

    /// Feeds what is ready (datagrams, a due timeout) to the connection and handles all it
    /// has to say: datagrams go out, received RTP goes to `rtp`.
    pub fn pump(&mut self, rtp: &mut dyn FnMut(&RtpPacket)) -> Result<(), RtcError> {
        for _ in 0..READS_PER_WAKE {
            let (n, from) = match self.socket.try_recv_from(&mut self.buf) {
                Ok(r) => r,
                Err(_) => break, // WouldBlock, or an ICMP error we do not care about
            };
            self.datagrams.0 += 1;
            if self.drop_next() {
                self.dropped += 1;
                continue;
            }
            let Ok(r) = Receive::new(Protocol::Udp, from, self.local, &self.buf[..n]) else {
                continue;
            };
            self.rtc.handle_input(Input::Receive(Instant::now(), r))?;
            self.drain(rtp)?;
        }
        let now = Instant::now();
        if now >= self.next_timeout {
            self.rtc.handle_input(Input::Timeout(now))?;
        }
        self.drain(rtp)
    }

    fn drain(&mut self, rtp: &mut dyn FnMut(&RtpPacket)) -> Result<(), RtcError> {
        loop {
            match self.rtc.poll_output()? {
                Output::Timeout(t) => {
                    self.next_timeout = t;
                    return Ok(());
                }
                Output::Transmit(t) => {
                    self.datagrams.1 += 1;
                    if self.socket.try_send_to(&t.contents, t.destination).is_err() {
                        self.send_drops += 1;
                    }
                }
                Output::Event(Event::RtpPacket(p)) => rtp(&p),
                Output::Event(_) => {}
            }
        }
    }

    /// Whether ICE and DTLS are up.
    pub fn connected(&self) -> bool {
        self.rtc.is_connected()
    }

    /// The payload type negotiated for `codec`.
    pub fn pt(&self, codec: Codec) -> Option<Pt> {
        self.rtc
            .codec_config()
            .find(|p| p.spec().codec == codec)
            .map(|p| p.pt())
    }

    /// Hands one RTP packet to the connection (sent on the next [`Peer::pump`] or
    /// [`Peer::flush`]): Opus on an audio mid, VP8 on a video one, on simulcast layer `rid`
    /// if given. False if the mid cannot send yet.
    pub fn write(
        &mut self,
        mid: Mid,
        rid: Option<&str>,
        seq: u64,
        ts: u32,
        marker: bool,
        payload: Vec<u8>,
    ) -> bool {
        let Some(kind) = self.rtc.media(mid).map(|m| m.kind()) else {
            return false;
        };
        let codec = if kind == MediaKind::Audio {
            Codec::Opus
        } else {
            Codec::Vp8
        };
        let Some(pt) = self.pt(codec) else {
            return false;
        };
        let mut api = self.rtc.direct_api();
        let Some(tx) = api.stream_tx_by_mid(mid, rid.map(Into::into)) else {
            return false;
        };
        tx.write_rtp(
            RtpWrite::new(pt, seq.into(), ts, Instant::now(), payload)
                .marker(marker)
                .nackable(kind == MediaKind::Video),
        );
        true
    }

    /// Sends what [`Peer::write`] queued.
    pub fn flush(&mut self) -> Result<(), RtcError> {
        self.drain(&mut |_| {})
    }
}
