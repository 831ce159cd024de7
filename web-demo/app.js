// The tern meeting demo: a pre-join screen (preview, level meter, devices), then the meeting:
// tiles that fill the window, screen share on the stage, chat, people, quality, invite link.
// `/?room=demo&name=alice` joins at once (`&cam=0`, `&mic=0` join with them off);
// `&token=...` uses a given token instead of /dev/token; `&relay=1` forces the TURN relay.
import { TernClient } from '/tern-client.js';
import { Prejoin, capture, listDevices } from '/devices.js';
import { Chat } from '/chat.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const tiles = new Map(); // tile key (participant id, 'self', or '<id>:screen') -> element
const state = { client: null, chat: null, micMuted: false, camMuted: false, stats: false, quality: null };
const prejoin = new Prejoin($);

function setStatus(text) { $('status').textContent = text; }

function tile(key, label, { screen = false } = {}) {
  let t = tiles.get(key);
  if (t) return t;
  t = document.createElement('div');
  t.className = screen ? 'tile screen' : 'tile';
  t.dataset.participant = key.replace(/:screen$/, '');
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
  t.append(video, name, mic, stats, qualityBars());
  $('grid').append(t);
  tiles.set(key, t);
  layout();
  return t;
}

function qualityBars() {
  const q = document.createElement('span');
  q.className = 'quality';
  q.append(document.createElement('i'), document.createElement('i'), document.createElement('i'));
  return q;
}

function removeTile(key) {
  for (const stop of tiles.get(key)?.watchers?.values() ?? []) stop();
  tiles.get(key)?.remove();
  tiles.delete(key);
  layout();
}

function removeParticipant(pid) {
  removeTile(pid);
  removeTile(`${pid}:screen`);
  document.querySelectorAll(`audio[data-participant="${pid}"]`).forEach((a) => a.remove());
}

// Tiles as large as the window allows: the column count whose 16:9 tiles come out biggest.
// With a screen shared, CSS puts it on the stage and the others in a strip.
function layout() {
  const grid = $('grid');
  const presenting = [...tiles.values()].some((t) => t.classList.contains('screen'));
  grid.classList.toggle('presenting', presenting);
  const n = Math.max(1, tiles.size);
  const { width, height } = grid.getBoundingClientRect();
  let best = { cols: 1, size: 0 };
  for (let cols = 1; cols <= n; cols++) {
    const rows = Math.ceil(n / cols);
    const w = Math.min(width / cols, ((height / rows) * 16) / 9);
    if (w > best.size) best = { cols, size: w };
  }
  grid.style.setProperty('--cols', best.cols);
  grid.style.setProperty('--rows', Math.ceil(n / best.cols));
  // Speakers first, then the rest in join order.
  for (const t of tiles.values()) t.style.order = t.classList.contains('active') ? -1 : 0;
}
new ResizeObserver(layout).observe($('grid'));

async function token(room, name) {
  const given = params.get('token');
  if (given) return given;
  const res = await fetch(`/dev/token?room=${encodeURIComponent(room)}&name=${encodeURIComponent(name)}`);
  if (!res.ok) throw new Error('this server needs a token: add &token=... to the link');
  return (await res.json()).token;
}

async function join(room, name, media) {
  $('prejoin').hidden = true;
  $('meeting').hidden = false;
  $('controls').hidden = false;
  setStatus(`joining ${room}...`);
  const relay = params.get('relay') === '1';
  // A token given in the link is read before the link is tidied: the address bar keeps only
  // what can be shared (room and name), never the token.
  const jwt = await token(room, name);
  history.replaceState(null, '', `/?room=${encodeURIComponent(room)}&name=${encodeURIComponent(name)}${relay ? '&relay=1' : ''}`);
  const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/rtc`;
  const client = new TernClient({ url, token: jwt, room, rtcConfig: relay ? { iceTransportPolicy: 'relay' } : {} });
  state.client = client;
  state.chat = new Chat(client, $, { onUnread: () => unread(1) });
  $('record').hidden = !grants(jwt).record;
  $('golive').hidden = !grants(jwt).broadcast;
  listen(client, room);
  const joined = await client.connect();
  for (const p of joined.participants) tile(p.id, p.name);
  setStatus(`in ${room} as ${joined.participant.name}`);
  people();
  const me = tile('self', `${joined.participant.name} (you)`);
  me.querySelector('video').srcObject = media.stream;
  for (const t of media.stream.getVideoTracks()) t.enabled = media.cameraOn;
  for (const t of media.stream.getAudioTracks()) t.enabled = media.micOn;
  setButtons('audio', !media.micOn);
  setButtons('video', !media.cameraOn);
  if (media.stream.getTracks().length) await client.publish(media.stream);
  await fillSwitches();
}

function listen(client, room) {
  client.addEventListener('participant-joined', (e) => { tile(e.detail.id, e.detail.name); people(); });
  client.addEventListener('participant-left', (e) => { removeParticipant(e.detail.participant); people(); });
  client.addEventListener('track', (e) => {
    const { info, track, participant } = e.detail;
    const pid = info.participant;
    const screen = info.source === 'screen';
    const name = participant?.name ?? pid;
    const t = screen ? tile(`${pid}:screen`, `${name} (screen)`, { screen }) : tile(pid, name);
    if (track.kind === 'video') {
      const video = t.querySelector('video');
      video.srcObject.getVideoTracks().forEach((old) => video.srcObject.removeTrack(old));
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
      audio.dataset.track = info.id;
      audio.srcObject = new MediaStream([track]);
      $('audio').append(audio);
    }
    if (!screen) setMutedClass(t, info.kind, info.muted);
    people();
  });
  // Everyone speaking is outlined; the active speaker comes first.
  client.addEventListener('speakers', (e) => {
    state.speaking = new Set(e.detail.speaking.map((s) => s.participant));
    for (const [key, t] of tiles) {
      const id = key === 'self' ? client.self?.id : key;
      t.classList.toggle('speaking', state.speaking.has(id));
      t.classList.toggle('active', id === e.detail.active);
    }
    layout();
    people();
  });
  client.addEventListener('track-unpublished', (e) => {
    for (const [key, t] of [...tiles]) {
      t.watchers?.get(e.detail.track)?.();
      t.watchers?.delete(e.detail.track);
      if (key.endsWith(':screen') && t.dataset.track === e.detail.track) removeTile(key);
    }
    document.querySelectorAll(`audio[data-track="${e.detail.track}"]`).forEach((a) => a.remove());
  });
  client.addEventListener('track-muted', (e) => {
    const info = client.tracks.get(e.detail.track);
    if (info && info.source !== 'screen') setMutedClass(tile(info.participant, ''), info.kind, e.detail.muted);
    people();
  });
  client.addEventListener('local-track-ended', (e) => {
    if (e.detail.source === 'screen') { removeTile('self:screen'); setShareButton(false); }
  });
  // People must know they are being recorded, or on air.
  client.addEventListener('recording', (e) => {
    $('rec').hidden = !e.detail.recording;
    $('record').setAttribute('aria-pressed', String(e.detail.recording));
    $('record').textContent = e.detail.recording ? 'Stop recording' : 'Record';
  });
  client.addEventListener('broadcast', (e) => {
    $('onair').hidden = !e.detail.live;
    $('onair').href = `/watch/${encodeURIComponent(room)}`;
    $('golive').setAttribute('aria-pressed', String(e.detail.live));
    $('golive').textContent = e.detail.live ? 'End broadcast' : 'Go live';
  });
  // A dropped connection comes back by itself (docs/signaling.md, Reconnecting).
  client.addEventListener('reconnecting', () => setStatus('connection lost, reconnecting...'));
  client.addEventListener('reconnected', (e) => {
    setStatus(`in ${room} as ${client.self.name}${e.detail.resumed ? '' : ' (rejoined)'}`);
    people();
  });
  client.addEventListener('closed', (e) => {
    $('rec').hidden = true;
    $('onair').hidden = true;
    setStatus(`disconnected (${e.detail.reason})`);
    for (const key of [...tiles.keys()]) if (!key.startsWith('self')) removeTile(key);
  });
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

function setButtons(kind, muted) {
  const key = kind === 'audio' ? 'micMuted' : 'camMuted';
  state[key] = muted;
  const button = $(kind === 'audio' ? 'mic' : 'cam');
  button.setAttribute('aria-pressed', String(muted));
  button.textContent = kind === 'audio' ? (muted ? 'Unmute mic' : 'Mute mic') : (muted ? 'Start camera' : 'Stop camera');
  setMutedClass(tile('self', ''), kind, muted);
}

function toggle(kind) {
  const muted = !state[kind === 'audio' ? 'micMuted' : 'camMuted'];
  state.client?.setMuted(kind, muted);
  for (const t of tiles.get('self')?.querySelector('video').srcObject?.getTracks() ?? []) {
    if (t.kind === kind) t.enabled = !muted;
  }
  setButtons(kind, muted);
  people();
}

// The participant list: names, muted microphones and cameras, who speaks, connection quality.
function people() {
  const c = state.client;
  if (!c?.self) return;
  const muted = (pid, kind) => [...c.tracks.values()].some((t) => t.participant === pid && t.kind === kind && t.source !== 'screen' && t.muted);
  const rows = [{ id: c.self.id, name: `${c.self.name} (you)`, mic: state.micMuted, cam: state.camMuted },
    ...[...c.participants.values()].map((p) => ({ id: p.id, name: p.name, mic: muted(p.id, 'audio'), cam: muted(p.id, 'video') }))];
  $('people-list').replaceChildren(...rows.map((r) => {
    const li = document.createElement('li');
    li.dataset.participant = r.id;
    li.classList.toggle('speaking', !!state.speaking?.has(r.id));
    const who = document.createElement('span');
    who.className = 'who';
    who.textContent = r.name;
    const flags = document.createElement('span');
    flags.className = 'flags';
    flags.textContent = `${r.mic ? 'mic off' : ''}${r.mic && r.cam ? ', ' : ''}${r.cam ? 'camera off' : ''}`;
    const q = qualityBars();
    q.dataset.level = (r.id === c.self.id ? state.quality?.self : state.quality?.participants.get(r.id)) || '';
    li.append(who, flags, q);
    return li;
  }));
  $('count').textContent = String(rows.length);
}

// Every 2 s: each tile's and each person's connection quality.
async function showQuality() {
  const c = state.client;
  if (!c?.self) return;
  state.quality = await c.connectionQuality();
  for (const [key, t] of tiles) {
    const pid = key.replace(/:screen$/, '');
    const level = pid === 'self' ? state.quality.self : state.quality.participants.get(pid);
    t.querySelector('.quality').dataset.level = level || '';
  }
  people();
}
setInterval(() => showQuality().catch(() => {}), 2000);

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

// Switching devices in the call: the new device's track replaces the old one in its sender.
async function fillSwitches() {
  const own = tiles.get('self')?.querySelector('video').srcObject;
  await listDevices($('cam-switch'), 'videoinput', own?.getVideoTracks()[0]?.getSettings().deviceId);
  await listDevices($('mic-switch'), 'audioinput', own?.getAudioTracks()[0]?.getSettings().deviceId);
}

async function switchDevice(kind, deviceId) {
  const c = state.client;
  const fresh = await capture(kind === 'video' ? { camera: deviceId, audio: false } : { microphone: deviceId, video: false });
  const track = fresh.getTracks()[0];
  await c.replaceTrack(track);
  const own = tiles.get('self').querySelector('video').srcObject;
  own.getTracks().filter((t) => t.kind === kind).forEach((t) => own.removeTrack(t));
  own.addTrack(track);
}
$('cam-switch').onchange = () => switchDevice('video', $('cam-switch').value).catch(fail);
$('mic-switch').onchange = () => switchDevice('audio', $('mic-switch').value).catch(fail);

function setShareButton(sharing) {
  $('share').setAttribute('aria-pressed', String(sharing));
  $('share').textContent = sharing ? 'Stop sharing' : 'Share screen';
}
$('share').onclick = async () => {
  const c = state.client;
  if (!c) return;
  if (c.sharingScreen) return c.stopScreenShare().catch(fail);
  try {
    const stream = await c.shareScreen();
    tile('self:screen', 'Your screen', { screen: true }).querySelector('video').srcObject = stream;
    setShareButton(true);
  } catch (e) {
    if (e.name !== 'NotAllowedError') fail(e); // cancelled in the browser's picker: nothing to say
  }
};

function showSide(panel) {
  const open = !$('side').hidden && !$(panel).hidden;
  $('side').hidden = open;
  for (const p of ['people', 'chat']) {
    $(p).hidden = p !== panel;
    $(`tab-${p}`).setAttribute('aria-pressed', String(p === panel));
  }
  $('people-button').setAttribute('aria-pressed', String(!open && panel === 'people'));
  $('chat-button').setAttribute('aria-pressed', String(!open && panel === 'chat'));
  if (panel === 'chat' && !open) unread(0);
  layout();
}

function unread(n) {
  const chatOpen = !$('side').hidden && !$('chat').hidden;
  const count = n === 0 || chatOpen ? 0 : Number($('unread').textContent || 0) + n;
  $('unread').textContent = String(count);
  $('unread').hidden = count === 0;
}

$('people-button').onclick = () => showSide('people');
$('chat-button').onclick = () => showSide('chat');
$('tab-people').onclick = () => showSide('people');
$('tab-chat').onclick = () => showSide('chat');
$('invite').onclick = async () => {
  const link = `${location.origin}/?room=${encodeURIComponent(state.client?.room ?? '')}`;
  try {
    await navigator.clipboard.writeText(link);
    setStatus(`invite link copied: ${link}`);
  } catch {
    setStatus(`invite link: ${link}`); // no clipboard here (not a secure context): copy it by hand
  }
};
$('stats').onclick = () => {
  state.stats = !state.stats;
  $('stats').setAttribute('aria-pressed', String(state.stats));
  document.body.classList.toggle('show-stats', state.stats);
};
$('record').onclick = () => {
  const c = state.client;
  if (c) (c.recording ? c.stopRecording() : c.startRecording()).catch(fail);
};
$('golive').onclick = () => {
  const c = state.client;
  if (c) (c.live ? c.stopBroadcast() : c.startBroadcast()).catch(fail);
};
$('mic').onclick = () => toggle('audio');
$('cam').onclick = () => toggle('video');
$('leave').onclick = () => {
  state.client?.leave();
  for (const key of [...tiles.keys()]) {
    tiles.get(key).querySelector('video')?.srcObject?.getTracks().forEach((t) => t.stop());
    removeTile(key);
  }
  document.querySelectorAll('#audio audio').forEach((a) => a.remove());
  $('chat-log').replaceChildren();
  $('controls').hidden = true;
  $('rec').hidden = true;
  $('onair').hidden = true;
  $('side').hidden = true;
  $('meeting').hidden = true;
  $('prejoin').hidden = false;
  setStatus('left');
  prejoin.start().catch(fail);
};
$('join-form').onsubmit = (e) => {
  e.preventDefault();
  prejoin.result().then((media) => join($('room').value.trim(), $('name').value.trim(), media)).catch(fail);
};

function fail(err) {
  console.error(err);
  setStatus(`error: ${err.message || err}`);
}

// Test and debugging hook: what this page shows and receives.
window.ternDemo = {
  get client() { return state.client; },
  /** Whether the live (on air) indicator is on screen. */
  liveShown() { return shown($('onair')); },
  /** Whether the recording indicator is on screen. */
  recordingShown() { return shown($('rec')); },
  marks() { return state.client ? state.client.marks : null; },
  // The local candidate of each connection's selected pair: its type (host, relay...).
  candidateTypes() { return selectedLocal('candidateType'); },
  // The same candidates' transport (udp or tcp).
  candidateProtocols() { return selectedLocal('protocol'); },
  async inbound() {
    const out = { video: [], audio: [] };
    if (!state.client) return out;
    (await state.client.receiveStats()).forEach((s) => {
      if (s.type !== 'inbound-rtp') return;
      if (s.kind === 'video') out.video.push({ framesDecoded: s.framesDecoded || 0, frameWidth: s.frameWidth || 0, frameHeight: s.frameHeight || 0, packetsLost: s.packetsLost || 0, track: state.client.midToTrack.get(s.mid) });
      else out.audio.push({ totalAudioEnergy: s.totalAudioEnergy || 0, audioLevel: s.audioLevel || 0 });
    });
    return out;
  },
  /** Chat messages shown: {name, text, private, mine, from, identity}. */
  chat() { return state.chat ? state.chat.messages : []; },
  /** Sends a chat message to everyone, or to participant id `to`. */
  sendChat(text, to) { return state.chat.send(text, to); },
  /** Each tile: its key, whether it shows a screen, and its size on screen. */
  tiles() {
    return [...tiles].map(([key, t]) => { const r = t.getBoundingClientRect(); return { key, screen: t.classList.contains('screen'), width: r.width, height: r.height, track: t.dataset.track || null, quality: t.querySelector('.quality').dataset.level || null }; });
  },
  /** The participant list as shown. */
  people() { return [...$('people-list').children].map((li) => ({ id: li.dataset.participant, text: li.textContent })); },
};

function shown(el) { return !el.hidden && el.getBoundingClientRect().height > 0; }

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

// A link with room and name joins at once, with the default devices.
if (params.get('room') && params.get('name')) {
  $('room').value = params.get('room');
  $('name').value = params.get('name');
  const video = params.get('cam') !== '0';
  const audio = params.get('mic') !== '0';
  capture({ video: true, audio: true })
    .catch(() => new MediaStream())
    .then((stream) => join(params.get('room'), params.get('name'), { stream, cameraOn: video, micOn: audio }))
    .catch(fail);
} else {
  if (params.get('room')) $('room').value = params.get('room');
  prejoin.start().catch(fail);
}
