// tern-client.js: a small browser client for tern's signaling protocol (version 1).
// No build step, no dependencies. Documented in docs/client.md.
//
//   import { TernClient } from '/tern-client.js';
//   const client = new TernClient({ url: 'ws://127.0.0.1:7880/rtc', token, room: 'demo' });
//   client.addEventListener('track', (e) => attach(e.detail));
//   await client.connect();
//   await client.publish(await navigator.mediaDevices.getUserMedia({ audio: true, video: true }));

const PROTOCOL_VERSION = 1;
/** How often the client pings tern, and how long a silent socket may be before it is dead. */
const HEARTBEAT_MS = 2000;
const DEAD_SOCKET_MS = 5000;
/** The close code that tells tern we gave up on this socket and will resume elsewhere. */
const RESUMABLE_CLOSE = 4000;
/** The least time between two ICE restarts. */
const ICE_RESTART_GAP_MS = 3000;

/** A camera's simulcast encodings, lowest first: about 150k, 500k and 1.5M bit/s. */
const SIMULCAST_LAYERS = [
  { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150_000 },
  { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500_000 },
  { rid: 'f', scaleResolutionDownBy: 1, maxBitrate: 1_500_000 },
];

/** Error from the server, with its stable `code`. */
export class TernError extends Error {
  constructor(code, message) {
    super(`${code}: ${message}`);
    this.code = code;
  }
}

/**
 * One participant's session: a signaling WebSocket, a publisher RTCPeerConnection (we offer)
 * and a subscriber RTCPeerConnection (the server offers). Events (CustomEvent, data in `detail`):
 * joined, participant-joined, participant-left, track-published, track, track-unpublished,
 * track-muted, local-track-ended, speakers, quality, send-layers, recording, broadcast, data,
 * data-error, error, closed.
 */
export class TernClient extends EventTarget {
  constructor({ url, token, room, autoSubscribe = true, rtcConfig = {}, data = true }) {
    super();
    Object.assign(this, { url, token, room, autoSubscribe, rtcConfig, data });
    this.channels = {}; // label -> RTCDataChannel (tern-reliable, tern-lossy)
    this.hints = new Map(); // publisher mid -> source, for every m-line offered
    this.nextDataId = 1;
    this.participants = new Map(); // id -> { id, identity, name }
    this.tracks = new Map(); // track id -> TrackInfo
    this.local = new Map(); // our track id or mid -> { sender, source, track }
    this.nextReq = 1;
    this.pending = new Map(); // req -> { resolve, reject }
    this.pubQueue = Promise.resolve();
    this.subQueue = Promise.resolve();
    this.midToTrack = new Map(); // subscriber mid -> track id (from a=msid)
    this.ownTracks = new Map(); // publisher mid -> our TrackInfo
    this.recordings = new Map(); // recording id -> state, while it records
    this.broadcasts = new Map(); // broadcast id -> {state, hlsUrl}, while it is on air
  }

  /** Opens the socket and joins. Resolves with the `joined` message. */
  connect() {
    this.marks = { connectStart: performance.now() }; // timings for benches and debugging
    this.heartbeat ??= setInterval(() => this.checkSocket(), HEARTBEAT_MS);
    return this.openSocket(null);
  }

  // One signaling socket: joins (resuming the session of `resume`, a resume token, if given)
  // and resolves with `joined`. A joined socket that drops starts reconnect().
  openSocket(resume) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.url);
      this.ws = ws;
      let joined = false;
      ws.onopen = () => {
        this.marks.wsOpen ??= performance.now();
        this.send({ type: 'join', v: PROTOCOL_VERSION, token: this.token, room: this.room, auto_subscribe: this.autoSubscribe, ...(resume ? { resume } : {}), req: 0 });
      };
      ws.onmessage = (ev) => {
        if (ws !== this.ws) return; // a socket given up on
        this.lastHeard = performance.now();
        const msg = JSON.parse(ev.data);
        if (msg.type === 'offer') this.marks.offerArrived ??= ev.timeStamp; // when it was queued
        joined ||= msg.type === 'joined';
        this.onMessage(msg, resolve, reject);
        const after = this.reconcileAfter;
        if (after && msg.type !== 'joined' && --after.left === 0) {
          this.reconcileAfter = null;
          this.reconcile(after.msg);
        }
      };
      ws.onerror = () => reject(new TernError('socket', 'WebSocket error'));
      ws.onclose = (ev) => {
        reject(new TernError('closed', 'socket closed before join'));
        if (ws !== this.ws) return;
        if (joined && !this.closeReason && this.resumeGrace > 0) {
          this.reconnect();
        } else if (!this.reconnecting) {
          clearInterval(this.heartbeat);
          this.closePeers();
          this.emit('closed', { code: ev.code, reason: this.closeReason || ev.reason || 'closed' });
        }
      };
    });
  }

  // A socket that has said nothing for a while is dead (a network change leaves TCP hanging
  // for minutes): give up on it and reconnect now. tern answers pings at once.
  checkSocket() {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN || this.closeReason || this.reconnecting || !this.self) return;
    if (performance.now() - this.lastHeard > DEAD_SOCKET_MS) {
      this.ws = null;
      ws.close(RESUMABLE_CLOSE, 'no answer'); // tern keeps the session for us to resume
      this.reconnect();
      return;
    }
    this.send({ type: 'ping' });
  }

  /**
   * The signaling socket dropped: join again presenting the resume token, backing off from
   * 250 ms to 1 s, while the server keeps the session (`resume_grace_secs`). Resumed, the
   * participant keeps its id, tracks and subscriptions, and both connections restart ICE. If
   * the session was gone, the client starts over as a new participant with the same tracks.
   * Events: `reconnecting`, then `reconnected` (`{resumed}`) or `closed`.
   */
  async reconnect() {
    if (this.reconnecting) return;
    this.reconnecting = true;
    this.marks.reconnectStart = performance.now();
    this.emit('reconnecting', {});
    for (const p of this.pending.values()) p.reject(new TernError('connection_lost', 'the connection dropped'));
    this.pending.clear();
    const giveUp = performance.now() + (this.resumeGrace + 30) * 1000;
    let delay = 250;
    while (!this.closeReason) {
      try {
        const msg = await this.openSocket(this.resumeToken);
        this.reconnecting = false;
        await this.afterRejoin(msg);
        return;
      } catch (e) {
        const transient = ['closed', 'socket', 'server_shutting_down', 'internal', 'join_timeout'].includes(e.code);
        if (!transient || performance.now() > giveUp) {
          this.reconnecting = false;
          this.closeReason = e.code;
          this.online?.reject(new TernError('connection_lost', 'the session could not be resumed'));
          this.online = null;
          clearInterval(this.heartbeat);
          this.closePeers();
          this.emit('closed', { code: 0, reason: e.code });
          return;
        }
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 1000);
      }
    }
    this.reconnecting = false;
  }

  // Back on a socket: the same session (restart ICE: the network path may be new), or a new
  // one (start over with the same tracks).
  async afterRejoin(msg) {
    // An offer that waited for the socket goes now (or gives up, when starting over).
    this.online?.resolve();
    this.online = null;
    this.iceServers = msg.ice_servers;
    for (const pc of [this.pub, this.sub]) {
      if (pc) pc.setConfiguration({ ...pc.getConfiguration(), iceServers: msg.ice_servers });
    }
    if (msg.resumed) {
      // The messages missed come first, with their reasons; then what they do not cover.
      if (msg.missed > 0) this.reconcileAfter = { left: msg.missed, msg };
      else this.reconcile(msg);
      this.restartIce(true);
    } else {
      await this.startOver(msg);
    }
    this.emit('reconnected', { resumed: !!msg.resumed });
  }

  // A resumed session's room as it is now: tell the page what changed while the socket was
  // down (the messages missed may follow too: the handlers take them once).
  reconcile(msg) {
    const now = new Map(msg.participants.map((p) => [p.id, p]));
    for (const id of [...this.participants.keys()]) if (!now.has(id)) this.onMessage({ type: 'participant_left', participant: id, reason: 'left' });
    for (const p of now.values()) this.onMessage({ type: 'participant_joined', participant: p });
    const tracks = new Map(msg.tracks.map((t) => [t.id, t]));
    for (const id of [...this.tracks.keys()]) if (!tracks.has(id)) this.onMessage({ type: 'track_unpublished', track: id });
    for (const t of tracks.values()) {
      if (this.tracks.has(t.id) && this.tracks.get(t.id).muted !== t.muted) this.onMessage({ type: 'track_muted', track: t.id, muted: t.muted });
      this.onMessage({ type: 'track_published', track: t });
    }
    for (const { mid, track } of msg.local_tracks || []) this.onMessage({ type: 'local_track_published', mid, track });
  }

  /** Restarts ICE on both connections (new credentials, new candidate pairs: RFC 8445 9). */
  restartIce(force = false) {
    if (this.restartingIce && !force) return;
    this.restartingIce = true;
    setTimeout(() => { this.restartingIce = false; }, ICE_RESTART_GAP_MS);
    this.marks.iceRestart = performance.now();
    if (this.pub) {
      this.pub.restartIce();
      this.negotiatePublisher([]).catch((e) => this.emit('error', e));
    }
    if (this.sub) this.request({ type: 'restart_ice' }).catch(() => {});
  }

  // The old session is gone (past the grace period): we are a new participant. The room is
  // reported afresh, and our tracks are published again on new connections.
  async startOver(msg) {
    const mine = [...this.local.values()];
    this.closePeers();
    for (const id of this.participants.keys()) this.emit('participant-left', { participant: id, reason: 'connection_lost' });
    for (const id of this.tracks.keys()) this.emit('track-unpublished', { track: id });
    this.participants.clear();
    this.tracks.clear();
    this.local.clear();
    this.ownTracks.clear();
    this.midToTrack.clear();
    this.hints.clear();
    this.channels = {};
    this.onJoined(msg);
    for (const p of msg.participants) this.emit('participant-joined', p);
    for (const t of msg.tracks) this.emit('track-published', t);
    const byGroup = (screen) => mine.filter((l) => (l.source === 'screen' || l.source === 'screen_audio') === screen && l.track.readyState === 'live');
    for (const group of [byGroup(false), byGroup(true)]) {
      if (!group.length) continue;
      const sources = Object.fromEntries(group.map((l) => [l.track.kind, l.source]));
      await this.publish(new MediaStream(group.map((l) => l.track)), sources, { simulcast: group.some((l) => l.simulcast) });
    }
  }

  // Resolves when the session is back after a dropped socket.
  backOnline() {
    if (this.closeReason) return Promise.reject(new TernError('connection_lost', 'the session is over'));
    if (!this.reconnecting) return Promise.resolve();
    if (!this.online) {
      let resolve;
      let reject;
      const promise = new Promise((res, rej) => { resolve = res; reject = rej; });
      this.online = { promise, resolve, reject };
    }
    return this.online.promise;
  }

  /**
   * Publishes the tracks of `stream`. `sources` maps track kind to a source name. A camera is
   * sent as three simulcast layers (rid q, h, f at 1/4, 1/2 and full resolution) unless
   * `simulcast` is false; a screen share as one high-priority stream.
   */
  async publish(stream, sources = { audio: 'microphone', video: 'camera' }, { simulcast = true } = {}) {
    const pc = this.publisherPc();
    const added = stream.getTracks().map((track) => {
      const source = sources[track.kind] || 'unknown';
      const init = { direction: 'sendonly', streams: [stream] };
      const layered = track.kind === 'video' && source === 'camera' && simulcast;
      if (layered) init.sendEncodings = SIMULCAST_LAYERS;
      if (source === 'screen') init.sendEncodings = [{ priority: 'high', networkPriority: 'high' }];
      const transceiver = pc.addTransceiver(track, init);
      return { transceiver, track, source, simulcast: layered };
    });
    await this.negotiatePublisher(added);
    // The session was lost and started over meanwhile: this connection is gone.
    if (pc !== this.pub) throw new TernError('connection_lost', 'the session started over; publish again');
    for (const a of added) {
      const mid = a.transceiver.mid;
      const entry = { mid, sender: a.transceiver.sender, track: a.track, source: a.source, simulcast: !!a.simulcast };
      this.local.set(mid, entry);
      this.announceMuted(entry);
    }
    return added.map((a) => a.transceiver.mid);
  }

  /**
   * Shares a screen (the browser asks which): its video as source `screen`, and its audio as
   * `screen_audio` when the browser offers it. Stopping from the browser's own "stop sharing"
   * bar unpublishes it, as `stopScreenShare()` does. Resolves with the captured stream.
   */
  async shareScreen({ audio = true } = {}) {
    const stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio });
    for (const track of stream.getTracks()) {
      track.addEventListener('ended', () => this.unpublish(track).catch((e) => this.emit('error', e)));
    }
    try {
      await this.publish(stream, { video: 'screen', audio: 'screen_audio' });
    } catch (e) {
      for (const track of stream.getTracks()) track.stop();
      throw e;
    }
    return stream;
  }

  /** Stops sharing the screen (both its video and its audio). */
  async stopScreenShare() {
    const shared = [...this.local.values()].filter((l) => l.source === 'screen' || l.source === 'screen_audio');
    for (const l of shared) await this.unpublish(l.track);
  }

  /** Whether we share a screen now. */
  get sharingScreen() { return [...this.local.values()].some((l) => l.source === 'screen'); }

  /**
   * Stops publishing one of our tracks: the others get `track_unpublished`. The track is
   * stopped; the event `local-track-ended` tells the page.
   */
  async unpublish(track) {
    const entry = [...this.local.values()].find((l) => l.track === track);
    if (!entry) return;
    this.local.delete(entry.mid);
    track.stop();
    if (this.pub && this.pub.signalingState !== 'closed') {
      this.pub.removeTrack(entry.sender);
      await this.negotiatePublisher([]);
    }
    this.emit('local-track-ended', { mid: entry.mid, source: entry.source, track });
  }

  /**
   * Sends another device's track in place of ours of the same kind and source (default: the
   * camera or the microphone), with `RTCRtpSender.replaceTrack`: no renegotiation, and the
   * others keep receiving the same track id. The old track is stopped; a muted one stays muted.
   */
  async replaceTrack(newTrack, source = newTrack.kind === 'audio' ? 'microphone' : 'camera') {
    const entry = [...this.local.values()].find((l) => l.source === source && l.track.kind === newTrack.kind);
    if (!entry) throw new TernError('not_published', `no ${source} track is published`);
    newTrack.enabled = entry.track.enabled;
    await entry.sender.replaceTrack(newTrack);
    entry.track.stop();
    entry.track = newTrack;
  }

  /** Mutes or unmutes one of our tracks (by kind) and tells the room. */
  setMuted(kind, muted) {
    for (const [, l] of this.local) {
      if (l.track.kind !== kind || l.source === 'screen' || l.source === 'screen_audio') continue;
      l.track.enabled = !muted;
      const id = this.ownTrackId(l);
      if (id) this.request({ type: 'mute', track: id, muted }).catch(() => {});
    }
  }

  /**
   * Sends a data message through tern: a string, or bytes (an ArrayBuffer or typed array).
   * `to` lists participant ids (default: everyone else); `reliable: false` sends on the
   * unordered channel without retransmissions. Resolves with the message's id once it is
   * handed to the channel; a refusal arrives later as a `data-error` event with that id.
   */
  async sendData(payload, { to, topic, reliable = true } = {}) {
    await this.dataReady;
    const channel = this.channels[reliable ? 'tern-reliable' : 'tern-lossy'];
    if (!channel || channel.readyState !== 'open') throw new TernError('data_unavailable', 'no data channel is open');
    const id = this.nextDataId++;
    const header = { type: 'data', id, ...(topic ? { topic } : {}), ...(to?.length ? { to } : {}) };
    if (typeof payload === 'string') {
      channel.send(JSON.stringify({ ...header, payload }));
    } else {
      const bytes = payload instanceof ArrayBuffer ? new Uint8Array(payload) : new Uint8Array(payload.buffer, payload.byteOffset, payload.byteLength);
      const head = new TextEncoder().encode(JSON.stringify(header));
      const out = new Uint8Array(head.length + 1 + bytes.length);
      out.set(head, 0);
      out.set(bytes, head.length + 1); // the byte between is 0: the separator
      channel.send(out);
    }
    return id;
  }

  /**
   * Tells the server how a received video track is shown: `{ width, height }` in device pixels
   * (it sends the smallest simulcast layer that covers them), or `{ paused: true }` to receive
   * none of it. Resolves when the server accepted.
   */
  setTrackSettings(trackId, { width, height, paused = false } = {}) {
    const size = width > 0 && height > 0 ? { width: Math.round(width), height: Math.round(height) } : {};
    return this.request({ type: 'track_settings', track: trackId, paused, ...size });
  }

  /**
   * Keeps the server told how `video` (an element showing track `trackId`) is shown: its size in
   * device pixels as it is resized, and paused while it is off screen or the tab is hidden.
   * Returns a function that stops watching.
   */
  watchVideo(trackId, video) {
    let visible = true;
    let last = '';
    let timer = null;
    const update = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        const ratio = window.devicePixelRatio || 1;
        const paused = !visible || document.hidden || video.clientWidth === 0;
        const settings = { paused, width: video.clientWidth * ratio, height: video.clientHeight * ratio };
        const key = JSON.stringify(settings);
        if (key === last) return;
        last = key;
        this.setTrackSettings(trackId, settings).catch((e) => {
          last = ''; // say it again on the next change
          if (e.code !== 'track_not_found') this.emit('error', e);
        });
      }, 100);
    };
    const resize = new ResizeObserver(update);
    resize.observe(video);
    const seen = new IntersectionObserver((entries) => {
      visible = entries[entries.length - 1].isIntersecting;
      update();
    });
    seen.observe(video);
    document.addEventListener('visibilitychange', update);
    update();
    return () => {
      resize.disconnect();
      seen.disconnect();
      document.removeEventListener('visibilitychange', update);
      clearTimeout(timer);
    };
  }

  /** True while the room is being recorded (show it: people must know). */
  get recording() { return this.recordings.size > 0; }

  /**
   * Starts recording the room (the token needs the `record` grant): the composite, or with
   * `perTrack` each track on its own. Resolves with `{ id, state }`.
   */
  startRecording({ perTrack = false } = {}) {
    return this.request({ type: 'start_recording', per_track: perTrack });
  }

  /** True while the room is broadcast live (show it: people must know they are on air). */
  get live() { return this.broadcasts.size > 0; }

  /**
   * Starts broadcasting the room live over HLS (the token needs the `broadcast` grant). Resolves
   * with `{id, state, hlsUrl}`; viewers watch at `/watch/<room>`.
   */
  startBroadcast({ layout } = {}) {
    return this.request(layout ? { type: 'start_broadcast', layout } : { type: 'start_broadcast' });
  }

  /** Stops broadcast `id`, or every broadcast of the room. */
  stopBroadcast(id) {
    return this.request(id ? { type: 'stop_broadcast', id } : { type: 'stop_broadcast' });
  }

  /** Stops recording `id`, or every recording of the room. */
  stopRecording(id) {
    return this.request(id ? { type: 'stop_recording', id } : { type: 'stop_recording' });
  }

  subscribe(trackIds) { return this.request({ type: 'subscribe', tracks: trackIds }); }
  unsubscribe(trackIds) { return this.request({ type: 'unsubscribe', tracks: trackIds }); }

  /** Leaves the room and closes everything. */
  leave() {
    this.closeReason = 'left';
    clearInterval(this.heartbeat);
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.send({ type: 'leave' });
    this.closePeers();
    if (this.ws) this.ws.close();
  }

  /**
   * What we receive, per video track id: the decoded size and bitrate from getStats(), and from
   * the server's last `quality` message the layer forwarded, the one aimed at, and whether our
   * bandwidth holds it back; plus our downlink estimate. For a stats overlay.
   */
  async videoStats() {
    const out = { estimate: this.quality?.estimate ?? null, tracks: {} };
    const now = performance.now();
    this.lastBytes ??= new Map();
    (await this.receiveStats()).forEach((s) => {
      if (s.type !== 'inbound-rtp' || s.kind !== 'video') return;
      const id = this.midToTrack.get(s.mid);
      if (!id) return;
      const prev = this.lastBytes.get(id);
      this.lastBytes.set(id, { bytes: s.bytesReceived, at: now });
      const bps = prev && now > prev.at ? ((s.bytesReceived - prev.bytes) * 8000) / (now - prev.at) : 0;
      const q = this.quality?.tracks.find((t) => t.track === id) || {};
      out.tracks[id] = { width: s.frameWidth || 0, height: s.frameHeight || 0, bps: Math.round(bps), layer: q.layer ?? null, rid: q.rid ?? null, target: q.target ?? null, bandwidthLimited: !!q.bandwidth_limited };
    });
    return out;
  }

  /**
   * How well each participant's media reaches us, and ours reaches tern, since the last call
   * (call it every few seconds): `'good'`, `'fair'`, `'poor'` or `'lost'`. Others' from the
   * subscriber connection's getStats() (loss; nothing arriving from unmuted tracks is `lost`)
   * and tern's `quality` messages (bandwidth holding their video back is at best `fair`); ours
   * from tern's receiver reports on the publisher connection (loss and round-trip time).
   * Resolves with `{ self, participants }` (a Map of participant id to level).
   */
  async connectionQuality() {
    this.qualityPrev ??= new Map();
    const per = new Map();
    (await this.receiveStats()).forEach((s) => {
      if (s.type !== 'inbound-rtp') return;
      const track = this.tracks.get(this.midToTrack.get(s.mid));
      if (!track) return;
      const prev = this.qualityPrev.get(s.id) || { received: 0, lost: 0 };
      this.qualityPrev.set(s.id, { received: s.packetsReceived || 0, lost: s.packetsLost || 0 });
      const p = per.get(track.participant) || { received: 0, lost: 0, expected: false, limited: false };
      p.received += (s.packetsReceived || 0) - prev.received;
      p.lost += Math.max(0, (s.packetsLost || 0) - prev.lost);
      p.expected ||= !track.muted;
      p.limited ||= !!this.quality?.tracks.find((t) => t.track === track.id)?.bandwidth_limited;
      per.set(track.participant, p);
    });
    const participants = new Map();
    for (const [id, p] of per) {
      const loss = p.received + p.lost > 0 ? p.lost / (p.received + p.lost) : 0;
      participants.set(id, p.expected && p.received === 0 ? 'lost' : grade(loss, 0, p.limited));
    }
    let loss = 0;
    let rtt = 0;
    (await this.sendStats()).forEach((s) => {
      if (s.type !== 'remote-inbound-rtp') return;
      loss = Math.max(loss, s.fractionLost || 0);
      rtt = Math.max(rtt, s.roundTripTime || 0);
    });
    const down = this.pub && ['disconnected', 'failed'].includes(this.pub.iceConnectionState);
    return { self: down ? 'lost' : grade(loss, rtt, false), participants };
  }

  /** getStats() of the subscriber connection (what we receive). */
  async receiveStats() { return this.sub ? this.sub.getStats() : new Map(); }
  /** getStats() of the publisher connection (what we send). */
  async sendStats() { return this.pub ? this.pub.getStats() : new Map(); }

  // ---- internals ----

  // tern's two data channels, on the publisher connection (see docs/signaling.md).
  openData() {
    const pc = this.publisherPc();
    const opened = [];
    for (const [label, init] of [['tern-reliable', { ordered: true }], ['tern-lossy', { ordered: false, maxRetransmits: 0 }]]) {
      const channel = pc.createDataChannel(label, init);
      channel.binaryType = 'arraybuffer';
      channel.onmessage = (e) => this.onData(label, e.data);
      this.channels[label] = channel;
      opened.push(new Promise((resolve, reject) => {
        channel.onopen = resolve;
        channel.onclose = () => reject(new TernError('data_unavailable', `${label} closed`));
      }));
    }
    this.dataReady = Promise.all(opened);
    this.dataReady.catch(() => {}); // a refusal shows on use
    return this.negotiatePublisher([]);
  }

  onData(label, data) {
    let header;
    let payload;
    if (typeof data === 'string') {
      header = JSON.parse(data);
      payload = header.payload;
    } else {
      const bytes = new Uint8Array(data);
      const nul = bytes.indexOf(0);
      if (nul < 0) return;
      header = JSON.parse(new TextDecoder().decode(bytes.subarray(0, nul)));
      payload = bytes.slice(nul + 1);
    }
    if (header.type === 'error') {
      const err = new TernError(header.code, header.message);
      err.id = header.id;
      this.emit('data-error', err);
      return;
    }
    if (header.type !== 'data') return;
    this.emit('data', {
      from: header.from, identity: header.identity, participant: this.participants.get(header.from) || null,
      topic: header.topic ?? null, to: header.to || [], payload, reliable: label === 'tern-reliable',
    });
  }

  emit(type, detail) { this.dispatchEvent(new CustomEvent(type, { detail })); }

  send(msg) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(msg));
  }

  /** Sends a request with a fresh `req`; resolves on its `ok` (or `answer`), rejects on its `error`. */
  request(msg) {
    // No socket to send it on (reconnecting): it would never be answered.
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return Promise.reject(new TernError('connection_lost', 'not connected'));
    const req = this.nextReq++;
    const done = new Promise((resolve, reject) => this.pending.set(req, { resolve, reject }));
    this.send({ ...msg, req });
    return done;
  }

  settle(req, err, value) {
    const p = this.pending.get(req);
    if (!p) return;
    this.pending.delete(req);
    err ? p.reject(err) : p.resolve(value);
  }

  ownTrackId(local) {
    return this.ownTracks.get(local.mid)?.id;
  }

  // A track published disabled (joined with the camera or microphone off) tells the room once
  // its id is known, whichever comes first: the answer or local_track_published.
  announceMuted(entry) {
    const id = this.ownTrackId(entry);
    if (!id || entry.track.enabled || entry.announced) return;
    entry.announced = true;
    this.request({ type: 'mute', track: id, muted: true }).catch(() => {});
  }

  // Sends each local candidate as the browser describes it (candidate, sdpMid, sdpMLineIndex,
  // usernameFragment), and an empty candidate when gathering is done.
  trickle(pc, target) {
    pc.onicecandidate = (e) => this.send({ type: 'candidate', target, ...(e.candidate ? e.candidate.toJSON() : { candidate: '' }) });
  }

  // A connection whose ICE fails, or stays disconnected for 2 s, while the socket is up gets
  // an ICE restart (a new network path: Wi-Fi to cable, a NAT rebinding).
  watchIce(pc) {
    pc.addEventListener('iceconnectionstatechange', () => {
      clearTimeout(pc.iceTimer);
      const state = pc.iceConnectionState;
      if (state === 'connected' || state === 'completed') {
        if (this.marks.iceRestart) this.marks.iceRecovered = performance.now();
        return;
      }
      const restart = () => {
        // Only over a socket heard from lately: during an outage the offer would wait in a
        // dead TCP connection; once the network is back, ICE recovers or the resume restarts it.
        const heard = performance.now() - (this.lastHeard || 0) < HEARTBEAT_MS * 1.5;
        const up = this.ws && this.ws.readyState === WebSocket.OPEN && !this.reconnecting && heard;
        if (pc === this.pub || pc === this.sub) if (up && ['disconnected', 'failed'].includes(pc.iceConnectionState)) this.restartIce();
      };
      if (state === 'failed') restart();
      else if (state === 'disconnected') pc.iceTimer = setTimeout(restart, 2000);
    });
  }

  publisherPc() {
    if (this.pub) return this.pub;
    const pc = new RTCPeerConnection({ ...this.rtcConfig, iceServers: this.iceServers || [], bundlePolicy: 'max-bundle' });
    this.trickle(pc, 'publisher');
    this.watchIce(pc);
    this.pub = pc;
    return pc;
  }

  subscriberPc() {
    if (this.sub) return this.sub;
    const pc = new RTCPeerConnection({ ...this.rtcConfig, iceServers: this.iceServers || [], bundlePolicy: 'max-bundle' });
    this.trickle(pc, 'subscriber');
    this.watchIce(pc);
    pc.addEventListener('connectionstatechange', () => {
      if (pc.connectionState === 'connected') this.marks.subscriberConnected ??= performance.now();
    });
    pc.ontrack = (e) => {
      const trackId = this.midToTrack.get(e.transceiver.mid);
      const info = this.tracks.get(trackId) || { id: trackId, participant: e.streams[0]?.id, kind: e.track.kind };
      this.emit('track', { info, track: e.track, participant: this.participants.get(info.participant) });
    };
    this.sub = pc;
    return pc;
  }

  // Publisher offers are serialised: one outstanding offer at a time, so no glare is possible.
  // A refused offer (permission_denied, say) is rolled back and its new m-lines stopped, so the
  // connection stays as it was and the next offer can go.
  // Each offer names the source of every m-line it ever offered (tern keeps the first it
  // hears); an offer lost with a dropped socket is made again once the session is back.
  negotiatePublisher(added) {
    const run = this.pubQueue.catch(() => {}).then(async () => {
      const pc = this.publisherPc();
      for (;;) {
        const offer = await pc.createOffer();
        await pc.setLocalDescription(offer);
        for (const a of added) this.hints.set(a.transceiver.mid, a.source);
        const tracks = [...this.hints].map(([mid, source]) => ({ mid, source }));
        try {
          const answer = await this.request({ type: 'offer', sdp: pc.localDescription.sdp, tracks });
          await pc.setRemoteDescription({ type: 'answer', sdp: answer });
          return;
        } catch (e) {
          if (pc.signalingState === 'have-local-offer') await pc.setLocalDescription({ type: 'rollback' });
          if (e.code === 'connection_lost' && !this.closeReason) {
            await this.backOnline();
            if (pc !== this.pub) return; // started over: publish() runs again on a new connection
            continue;
          }
          for (const a of added) {
            this.hints.delete(a.transceiver.mid);
            a.transceiver.stop();
          }
          throw e;
        }
      }
    });
    this.pubQueue = run;
    return run;
  }

  // The server offers on the subscriber connection; we only ever answer.
  onSubscriberOffer(sdp) {
    this.subQueue = this.subQueue.then(async () => {
      for (const [mid, track] of msidsByMid(sdp)) this.midToTrack.set(mid, track);
      const pc = this.subscriberPc();
      // The same offer again (resent after a resume; the o= line names its version): our answer
      // to it was lost; repeat it.
      const origin = (d) => /^o=.*$/m.exec(d || '')?.[0];
      if (pc.signalingState === 'stable' && pc.localDescription && origin(pc.remoteDescription?.sdp) === origin(sdp)) {
        this.send({ type: 'answer', sdp: pc.localDescription.sdp });
        return;
      }
      this.marks.subscriberOffer ??= performance.now();
      await pc.setRemoteDescription({ type: 'offer', sdp });
      const answer = await pc.createAnswer();
      await pc.setLocalDescription(answer);
      this.send({ type: 'answer', sdp: pc.localDescription.sdp });
      this.marks.subscriberAnswer ??= performance.now();
    }).catch((e) => this.emit('error', e));
  }

  onMessage(msg, resolveJoin, rejectJoin) {
    switch (msg.type) {
      case 'joined':
        this.resumeToken = msg.resume_token;
        this.resumeGrace = msg.resume_grace_secs || 0;
        // A rejoin after a dropped socket is handled by reconnect().
        if (!this.self) this.onJoined(msg);
        resolveJoin(msg);
        break;
      case 'ice_servers':
        // Fresh TURN credentials: the next relay allocation (an ICE restart) uses them.
        this.iceServers = msg.ice_servers;
        for (const pc of [this.pub, this.sub]) {
          if (pc) pc.setConfiguration({ ...pc.getConfiguration(), iceServers: msg.ice_servers });
        }
        break;
      case 'answer': this.settle(msg.req, null, msg.sdp); break;
      case 'offer': this.onSubscriberOffer(msg.sdp); break;
      // Each change is told once, even when a resumed session hears it twice.
      case 'participant_joined': {
        const known = this.participants.has(msg.participant.id);
        this.participants.set(msg.participant.id, msg.participant);
        if (!known) this.emit('participant-joined', msg.participant);
        break;
      }
      case 'participant_left':
        if (this.participants.delete(msg.participant)) this.emit('participant-left', msg);
        break;
      case 'track_published': {
        const known = this.tracks.has(msg.track.id);
        this.tracks.set(msg.track.id, msg.track);
        if (!known) this.emit('track-published', msg.track);
        break;
      }
      case 'local_track_published': {
        this.ownTracks.set(msg.mid, msg.track);
        const entry = this.local.get(msg.mid);
        if (entry) this.announceMuted(entry);
        break;
      }
      case 'ok': this.settle(msg.req, null); break;
      case 'recording':
        this.onRecording(msg);
        if (msg.req !== undefined) this.settle(msg.req, null, { id: msg.id, state: msg.state });
        break;
      case 'broadcast':
        this.onBroadcast(msg);
        if (msg.req !== undefined) {
          this.settle(msg.req, null, { id: msg.id, state: msg.state, hlsUrl: msg.hls_url });
        }
        break;
      case 'send_layers':
        // One setParameters at a time: two at once race on the parameters' transaction.
        this.layersQueue = (this.layersQueue || Promise.resolve())
          .then(() => this.applySendLayers(msg))
          .catch((e) => this.emit('error', e));
        break;
      case 'speakers':
        this.activeSpeaker = msg.active;
        this.emit('speakers', msg);
        break;
      case 'quality':
        this.quality = msg;
        this.emit('quality', msg);
        break;
      case 'track_unpublished':
        if (this.tracks.delete(msg.track)) this.emit('track-unpublished', msg);
        break;
      case 'track_muted': {
        const t = this.tracks.get(msg.track);
        if (t) t.muted = msg.muted;
        this.emit('track-muted', msg);
        break;
      }
      case 'error': {
        const err = new TernError(msg.code, msg.message);
        if (msg.req === 0) rejectJoin(err);
        else if (msg.req !== undefined) this.settle(msg.req, err);
        this.emit('error', err);
        break;
      }
      case 'closing':
        this.closeReason = msg.reason;
        break;
    }
  }

  onJoined(msg) {
    this.marks.joined = performance.now();
    this.self = msg.participant;
    this.iceServers = msg.ice_servers;
    for (const p of msg.participants) this.participants.set(p.id, p);
    for (const t of msg.tracks) this.tracks.set(t.id, t);
    for (const r of msg.recordings || []) this.onRecording(r);
    for (const b of msg.broadcasts || []) this.onBroadcast(b);
    if (this.data) this.openData().catch((e) => this.emit('error', e));
    this.emit('joined', msg);
  }

  onBroadcast({ id, state, hls_url: hlsUrl }) {
    if (state === 'starting' || state === 'live') this.broadcasts.set(id, { state, hlsUrl });
    else this.broadcasts.delete(id);
    this.emit('broadcast', { id, state, hlsUrl, live: this.live });
  }

  onRecording({ id, state }) {
    if (state === 'starting' || state === 'active') this.recordings.set(id, state);
    else this.recordings.delete(id);
    this.emit('recording', { id, state, recording: this.recording });
  }

  // Dynacast: send only the encodings someone watches (the others cost uplink for nothing).
  async applySendLayers({ mid, layers }) {
    const sender = this.local.get(mid)?.sender;
    if (!sender) return;
    const params = sender.getParameters();
    if (!params.encodings?.length) return;
    let changed = false;
    for (const { rid, active } of layers) {
      const enc = rid == null ? params.encodings[0] : params.encodings.find((e) => e.rid === rid);
      if (enc && enc.active !== active) { enc.active = active; changed = true; }
    }
    if (changed) await sender.setParameters(params);
    this.emit('send-layers', { mid, layers });
  }

  closePeers() {
    for (const pc of [this.pub, this.sub]) if (pc) pc.close();
    this.pub = this.sub = null;
  }
}

/** A quality level from a loss fraction, a round-trip time in seconds, and a bandwidth limit. */
function grade(loss, rtt, limited) {
  if (loss > 0.1 || rtt > 0.5) return 'poor';
  if (loss > 0.02 || rtt > 0.25 || limited) return 'fair';
  return 'good';
}

/** Maps each m-section's mid to the track id of its `a=msid:<stream> <track>` line. */
export function msidsByMid(sdp) {
  const out = new Map();
  for (const section of sdp.split(/\r?\nm=/).slice(1)) {
    const mid = /\na=mid:(\S+)/.exec(section);
    const msid = /\na=msid:\S+ (\S+)/.exec(section);
    if (mid && msid) out.set(mid[1], msid[1]);
  }
  return out;
}
