// The tern meeting demo: join a room, see and hear everyone, mute, leave.
// `/?room=demo&name=alice` joins at once; `&token=...` uses a given token instead of /dev/token.
import { TernClient } from '/tern-client.js';

const $ = (id) => document.getElementById(id);
const tiles = new Map(); // participant id -> tile element
const state = { client: null, micMuted: false, camMuted: false, stats: false };

function setStatus(text) { $('status').textContent = text; }

function tile(participant, label) {
  let t = tiles.get(participant);
  if (t) return t;
  t = document.createElement('div');
  t.className = 'tile';
  t.dataset.participant = participant;
  const video = document.createElement('video');
  video.autoplay = true;
  video.playsInline = true;
  video.muted = true; // audio plays through a separate <audio> element
  video.srcObject = new MediaStream();
  const name = document.createElement('span');
  name.className = 'name';
  name.textContent = label;
  const mic = document.createElement('span');
  mic.className = 'mic-off';
  mic.textContent = 'muted';
  const stats = document.createElement('span');
  stats.className = 'stats';
  t.append(video, name, mic, stats);
  $('grid').append(t);
  tiles.set(participant, t);
  return t;
}

function removeTile(participant) {
  for (const stop of tiles.get(participant)?.watchers?.values() ?? []) stop();
  tiles.get(participant)?.remove();
  tiles.delete(participant);
  document.querySelectorAll(`audio[data-participant="${participant}"]`).forEach((a) => a.remove());
}

async function token(room, name) {
  const given = new URLSearchParams(location.search).get('token');
  if (given) return given;
  const res = await fetch(`/dev/token?room=${encodeURIComponent(room)}&name=${encodeURIComponent(name)}`);
  if (!res.ok) throw new Error('this server needs a token: add &token=... to the link');
  return (await res.json()).token;
}

async function join(room, name) {
  $('join-form').hidden = true;
  $('grid').hidden = false;
  $('controls').hidden = false;
  setStatus(`joining ${room}...`);
  // ?relay=1 forces media through the TURN relay (what a strict firewall leaves you).
  const relay = new URLSearchParams(location.search).get('relay') === '1';
  // A token given in the link is read before the link is tidied: the address bar keeps only
  // what can be shared (room and name), never the token.
  const jwt = await token(room, name);
  history.replaceState(null, '', `/?room=${encodeURIComponent(room)}&name=${encodeURIComponent(name)}${relay ? '&relay=1' : ''}`);
  const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/rtc`;
  const rtcConfig = relay ? { iceTransportPolicy: 'relay' } : {};
  const client = new TernClient({ url, token: jwt, room, rtcConfig });
  state.client = client;
  // The Record and Go live buttons are for tokens with the `record` and `broadcast` grants.
  $('record').hidden = !grants(jwt).record;
  $('golive').hidden = !grants(jwt).broadcast;
  client.addEventListener('participant-joined', (e) => tile(e.detail.id, e.detail.name));
  client.addEventListener('participant-left', (e) => removeTile(e.detail.participant));
  client.addEventListener('track', (e) => {
    const { info, track, participant } = e.detail;
    const pid = info.participant;
    const t = tile(pid, participant?.name ?? pid);
    if (track.kind === 'video') {
      const video = t.querySelector('video');
      video.srcObject.addTrack(track);
      t.dataset.track = info.id;
      // The server sends the simulcast layer this tile's size needs, and nothing while hidden.
      t.watchers ??= new Map();
      t.watchers.get(info.id)?.();
      t.watchers.set(info.id, client.watchVideo(info.id, video));
      // The first frame shown from anyone: the join-to-video figure in docs/performance.md.
      video.requestVideoFrameCallback?.(() => { client.marks.firstFrame ??= performance.now(); });
    } else {
      const audio = document.createElement('audio');
      audio.autoplay = true;
      audio.dataset.participant = pid;
      audio.srcObject = new MediaStream([track]);
      $('audio').append(audio);
    }
    setMutedClass(t, info.kind, info.muted);
  });
  // The active speaker gets the large tile; everyone speaking is outlined.
  client.addEventListener('speakers', (e) => {
    const speaking = new Set(e.detail.speaking.map((s) => s.participant));
    for (const [pid, t] of tiles) {
      const id = pid === 'self' ? client.self?.id : pid;
      t.classList.toggle('speaking', speaking.has(id));
      t.classList.toggle('active', id === e.detail.active);
    }
  });
  client.addEventListener('track-unpublished', (e) => {
    for (const t of tiles.values()) {
      t.watchers?.get(e.detail.track)?.();
      t.watchers?.delete(e.detail.track);
    }
  });
  client.addEventListener('track-muted', (e) => {
    const info = client.tracks.get(e.detail.track);
    if (info) setMutedClass(tile(info.participant, ''), info.kind, e.detail.muted);
  });
  // People must know they are being recorded: the indicator shows while anyone records.
  client.addEventListener('recording', (e) => {
    $('rec').hidden = !e.detail.recording;
    $('record').setAttribute('aria-pressed', String(e.detail.recording));
    $('record').textContent = e.detail.recording ? 'Stop recording' : 'Record';
  });
  // People must know they are on air: the indicator shows while the room is broadcast, and
  // links to the watch page.
  client.addEventListener('broadcast', (e) => {
    $('onair').hidden = !e.detail.live;
    $('onair').href = `/watch/${encodeURIComponent(room)}`;
    $('golive').setAttribute('aria-pressed', String(e.detail.live));
    $('golive').textContent = e.detail.live ? 'End broadcast' : 'Go live';
  });
  client.addEventListener('closed', (e) => {
    $('rec').hidden = true;
    $('onair').hidden = true;
    setStatus(`disconnected (${e.detail.reason})`);
    for (const p of [...tiles.keys()]) if (p !== 'self') removeTile(p);
  });
  const joined = await client.connect();
  for (const p of joined.participants) tile(p.id, p.name);
  setStatus(`in ${room} as ${joined.participant.name}`);
  const media = await navigator.mediaDevices.getUserMedia({ audio: true, video: { width: 1280, height: 720 } });
  const me = tile('self', `${joined.participant.name} (you)`);
  me.querySelector('video').srcObject = media;
  await client.publish(media);
}

/** The grants of a token (its payload is readable; only the server checks its signature). */
function grants(jwt) {
  try {
    const payload = jwt.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(atob(payload)).grants || {};
  } catch {
    return {};
  }
}

function setMutedClass(t, kind, muted) {
  t.classList.toggle(kind === 'video' ? 'video-muted' : 'audio-muted', !!muted);
}

function toggle(kind) {
  const key = kind === 'audio' ? 'micMuted' : 'camMuted';
  state[key] = !state[key];
  state.client?.setMuted(kind, state[key]);
  const button = $(kind === 'audio' ? 'mic' : 'cam');
  button.setAttribute('aria-pressed', String(state[key]));
  button.textContent = kind === 'audio' ? (state[key] ? 'Unmute mic' : 'Mute mic') : (state[key] ? 'Start camera' : 'Stop camera');
  setMutedClass(tile('self', ''), kind, state[key]);
}

// On demand, each tile shows the layer it receives, its size and bitrate, and the estimate.
async function showStats() {
  if (!state.stats || !state.client) return;
  const s = await state.client.videoStats();
  for (const t of tiles.values()) {
    const v = s.tracks[t.dataset.track];
    const label = t.querySelector('.stats');
    if (!v) { label.textContent = ''; continue; }
    const kbps = (n) => `${Math.round(n / 1000)} kbit/s`;
    const layer = v.rid ?? v.layer ?? '-';
    const switching = v.target !== null && v.layer !== v.target ? ` -> ${v.target}` : '';
    label.textContent = `layer ${layer}${switching}${v.bandwidthLimited ? ' (bandwidth)' : ''} | ${v.width}x${v.height} | ${kbps(v.bps)}${s.estimate ? ` | estimate ${kbps(s.estimate)}` : ''}`;
  }
}
setInterval(showStats, 1000);
$('stats').onclick = () => {
  state.stats = !state.stats;
  $('stats').setAttribute('aria-pressed', String(state.stats));
  document.body.classList.toggle('show-stats', state.stats);
};

$('record').onclick = () => {
  const c = state.client;
  if (!c) return;
  (c.recording ? c.stopRecording() : c.startRecording()).catch(fail);
};
$('golive').onclick = () => {
  const c = state.client;
  if (!c) return;
  (c.live ? c.stopBroadcast() : c.startBroadcast()).catch(fail);
};
$('mic').onclick = () => toggle('audio');
$('cam').onclick = () => toggle('video');
$('leave').onclick = () => {
  state.client?.leave();
  for (const p of [...tiles.keys()]) removeTile(p);
  $('controls').hidden = true;
  $('rec').hidden = true;
  $('onair').hidden = true;
  $('grid').hidden = true;
  $('join-form').hidden = false;
  setStatus('left');
};
$('join-form').onsubmit = (e) => {
  e.preventDefault();
  join($('room').value.trim(), $('name').value.trim()).catch(fail);
};

function fail(err) {
  console.error(err);
  setStatus(`error: ${err.message || err}`);
}

// Test and debugging hook: what this page receives, summarised from getStats().
window.ternDemo = {
  get client() { return state.client; },
  /** Whether the live (on air) indicator is on screen. */
  liveShown() {
    const r = $('onair');
    return !r.hidden && r.getBoundingClientRect().height > 0;
  },
  /** Whether the recording indicator is on screen. */
  recordingShown() {
    const r = $('rec');
    return !r.hidden && r.getBoundingClientRect().height > 0;
  },
  marks() { return state.client ? state.client.marks : null; },
  /** The local candidate type of each connection's selected pair ('host', 'relay', ...). */
  // The local candidate of each connection's selected pair: its type (host, relay...).
  candidateTypes() {
    return selectedLocal('candidateType');
  },
  // The same candidates' transport (udp or tcp).
  candidateProtocols() {
    return selectedLocal('protocol');
  },
  async inbound() {
    const out = { video: [], audio: [] };
    if (!state.client) return out;
    (await state.client.receiveStats()).forEach((s) => {
      if (s.type !== 'inbound-rtp') return;
      if (s.kind === 'video') out.video.push({ framesDecoded: s.framesDecoded || 0, frameWidth: s.frameWidth || 0, packetsLost: s.packetsLost || 0 });
      else out.audio.push({ totalAudioEnergy: s.totalAudioEnergy || 0, audioLevel: s.audioLevel || 0 });
    });
    return out;
  },
};

async function selectedLocal(field) {
  if (!state.client) return {};
  const pick = (stats) => {
    let pair = null;
    stats.forEach((s) => { if (s.type === 'transport' && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId); });
    const local = pair && stats.get(pair.localCandidateId);
    return local ? local[field] : null;
  };
  return { publisher: pick(await state.client.sendStats()), subscriber: pick(await state.client.receiveStats()) };
}

const params = new URLSearchParams(location.search);
if (params.get('room') && params.get('name')) {
  $('room').value = params.get('room');
  $('name').value = params.get('name');
  join(params.get('room'), params.get('name')).catch(fail);
}
