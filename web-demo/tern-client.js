// tern-client.js: a small browser client for tern's signaling protocol (version 1).
// No build step, no dependencies. Documented in docs/client.md.
//
//   import { TernClient } from '/tern-client.js';
//   const client = new TernClient({ url: 'ws://127.0.0.1:7880/rtc', token, room: 'demo' });
//   client.addEventListener('track', (e) => attach(e.detail));
//   await client.connect();
//   await client.publish(await navigator.mediaDevices.getUserMedia({ audio: true, video: true }));

const PROTOCOL_VERSION = 1;

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
 * track-muted, speakers, quality, send-layers, recording, broadcast, error, closed.
 */
export class TernClient extends EventTarget {
  constructor({ url, token, room, autoSubscribe = true, rtcConfig = {} }) {
    super();
    Object.assign(this, { url, token, room, autoSubscribe, rtcConfig });
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
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.url);
      this.ws = ws;
      ws.onopen = () => (this.marks.wsOpen = performance.now()) && this.send({ type: 'join', v: PROTOCOL_VERSION, token: this.token, room: this.room, auto_subscribe: this.autoSubscribe, req: 0 });
      ws.onmessage = (ev) => this.onMessage(JSON.parse(ev.data), resolve, reject);
      ws.onerror = () => reject(new TernError('socket', 'WebSocket error'));
      ws.onclose = (ev) => {
        this.closePeers();
        reject(new TernError('closed', 'socket closed before join'));
        this.emit('closed', { code: ev.code, reason: this.closeReason || ev.reason || 'closed' });
      };
    });
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
      if (track.kind === 'video' && source === 'camera' && simulcast) init.sendEncodings = SIMULCAST_LAYERS;
      if (source === 'screen') init.sendEncodings = [{ priority: 'high', networkPriority: 'high' }];
      const transceiver = pc.addTransceiver(track, init);
      return { transceiver, track, source };
    });
    await this.negotiatePublisher(added);
    for (const a of added) {
      const mid = a.transceiver.mid;
      this.local.set(mid, { mid, sender: a.transceiver.sender, track: a.track, source: a.source });
    }
    return added.map((a) => a.transceiver.mid);
  }

  /** Mutes or unmutes one of our tracks (by kind) and tells the room. */
  setMuted(kind, muted) {
    for (const [, l] of this.local) {
      if (l.track.kind !== kind) continue;
      l.track.enabled = !muted;
      const id = this.ownTrackId(l);
      if (id) this.request({ type: 'mute', track: id, muted }).catch(() => {});
    }
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

  /** getStats() of the subscriber connection (what we receive). */
  async receiveStats() { return this.sub ? this.sub.getStats() : new Map(); }
  /** getStats() of the publisher connection (what we send). */
  async sendStats() { return this.pub ? this.pub.getStats() : new Map(); }

  // ---- internals ----

  emit(type, detail) { this.dispatchEvent(new CustomEvent(type, { detail })); }

  send(msg) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(msg));
  }

  /** Sends a request with a fresh `req`; resolves on its `ok` (or `answer`), rejects on its `error`. */
  request(msg) {
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

  // Sends each local candidate as the browser describes it (candidate, sdpMid, sdpMLineIndex,
  // usernameFragment), and an empty candidate when gathering is done.
  trickle(pc, target) {
    pc.onicecandidate = (e) => this.send({ type: 'candidate', target, ...(e.candidate ? e.candidate.toJSON() : { candidate: '' }) });
  }

  publisherPc() {
    if (this.pub) return this.pub;
    const pc = new RTCPeerConnection({ ...this.rtcConfig, iceServers: this.iceServers || [], bundlePolicy: 'max-bundle' });
    this.trickle(pc, 'publisher');
    this.pub = pc;
    return pc;
  }

  subscriberPc() {
    if (this.sub) return this.sub;
    const pc = new RTCPeerConnection({ ...this.rtcConfig, iceServers: this.iceServers || [], bundlePolicy: 'max-bundle' });
    this.trickle(pc, 'subscriber');
    pc.ontrack = (e) => {
      const trackId = this.midToTrack.get(e.transceiver.mid);
      const info = this.tracks.get(trackId) || { id: trackId, participant: e.streams[0]?.id, kind: e.track.kind };
      this.emit('track', { info, track: e.track, participant: this.participants.get(info.participant) });
    };
    this.sub = pc;
    return pc;
  }

  // Publisher offers are serialised: one outstanding offer at a time, so no glare is possible.
  negotiatePublisher(added) {
    this.pubQueue = this.pubQueue.then(async () => {
      const pc = this.publisherPc();
      const offer = await pc.createOffer();
      await pc.setLocalDescription(offer);
      const tracks = added.map((a) => ({ mid: a.transceiver.mid, source: a.source }));
      const answer = await this.request({ type: 'offer', sdp: pc.localDescription.sdp, tracks });
      await pc.setRemoteDescription({ type: 'answer', sdp: answer });
    });
    return this.pubQueue;
  }

  // The server offers on the subscriber connection; we only ever answer.
  onSubscriberOffer(sdp) {
    this.subQueue = this.subQueue.then(async () => {
      for (const [mid, track] of msidsByMid(sdp)) this.midToTrack.set(mid, track);
      const pc = this.subscriberPc();
      await pc.setRemoteDescription({ type: 'offer', sdp });
      const answer = await pc.createAnswer();
      await pc.setLocalDescription(answer);
      this.send({ type: 'answer', sdp: pc.localDescription.sdp });
    }).catch((e) => this.emit('error', e));
  }

  onMessage(msg, resolveJoin, rejectJoin) {
    switch (msg.type) {
      case 'joined':
        this.marks.joined = performance.now();
        this.self = msg.participant;
        this.iceServers = msg.ice_servers;
        for (const p of msg.participants) this.participants.set(p.id, p);
        for (const t of msg.tracks) this.tracks.set(t.id, t);
        for (const r of msg.recordings || []) this.onRecording(r);
        for (const b of msg.broadcasts || []) this.onBroadcast(b);
        this.emit('joined', msg);
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
      case 'participant_joined':
        this.participants.set(msg.participant.id, msg.participant);
        this.emit('participant-joined', msg.participant);
        break;
      case 'participant_left':
        this.participants.delete(msg.participant);
        this.emit('participant-left', msg);
        break;
      case 'track_published':
        this.tracks.set(msg.track.id, msg.track);
        this.emit('track-published', msg.track);
        break;
      case 'local_track_published':
        this.ownTracks.set(msg.mid, msg.track);
        break;
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
        this.tracks.delete(msg.track);
        this.emit('track-unpublished', msg);
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
