// Cameras and microphones: the pre-join preview with its level meter, device lists, and the
// media a participant joins with. Used by app.js.

/** Fills a <select> with the devices of `kind` ('videoinput', 'audioinput'), keeping `selected`. */
export async function listDevices(select, kind, selected) {
  const devices = (await navigator.mediaDevices.enumerateDevices()).filter((d) => d.kind === kind);
  select.replaceChildren(...devices.map((d, i) => {
    const o = document.createElement('option');
    o.value = d.deviceId;
    o.textContent = d.label || `${kind === 'videoinput' ? 'Camera' : 'Microphone'} ${i + 1}`;
    return o;
  }));
  if (selected) select.value = selected;
  select.disabled = devices.length === 0;
}

/** A stream from the chosen camera and microphone (either may be absent, or fail). */
export async function capture({ camera, microphone, video = true, audio = true }) {
  const constraints = {
    video: video ? { width: 1280, height: 720, ...(camera ? { deviceId: { exact: camera } } : {}) } : false,
    audio: audio ? (microphone ? { deviceId: { exact: microphone } } : true) : false,
  };
  if (!constraints.video && !constraints.audio) return new MediaStream();
  return navigator.mediaDevices.getUserMedia(constraints);
}

/**
 * A level meter: sets the width of `bar` from the loudness of `track` (0 to 100 %), about 20
 * times a second. Returns a function that stops it.
 */
export function levelMeter(track, bar) {
  const ctx = new AudioContext();
  const source = ctx.createMediaStreamSource(new MediaStream([track]));
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 512;
  source.connect(analyser);
  const samples = new Float32Array(analyser.fftSize);
  const timer = setInterval(() => {
    analyser.getFloatTimeDomainData(samples);
    let sum = 0;
    for (const s of samples) sum += s * s;
    const rms = Math.sqrt(sum / samples.length);
    // -60 dBFS and below shows empty, 0 dBFS full.
    const db = 20 * Math.log10(rms || 1e-6);
    const level = Math.max(0, Math.min(1, (db + 60) / 60));
    bar.style.width = `${Math.round(level * 100)}%`;
    bar.dataset.level = level.toFixed(2);
  }, 50);
  return () => {
    clearInterval(timer);
    ctx.close();
    bar.style.width = '0';
  };
}

/**
 * The pre-join screen: a live preview of the chosen camera, the microphone's level, the device
 * lists, and the camera/microphone switches. `result()` gives what to join with.
 */
export class Prejoin {
  constructor($) {
    this.$ = $;
    this.stream = null;
    this.stopMeter = () => {};
  }

  /** Opens the default devices and fills the lists. An error (no device, no permission) shows. */
  async start() {
    const $ = this.$;
    $('camera-select').onchange = () => this.reopen();
    $('mic-select').onchange = () => this.reopen();
    $('cam-on').onchange = () => this.showCamera();
    await this.reopen();
  }

  /** Opens the chosen devices (again); `result()` waits for it. */
  reopen() {
    this.opening = this.open();
    return this.opening;
  }

  async open() {
    const $ = this.$;
    this.release();
    try {
      this.stream = await capture({ camera: $('camera-select').value, microphone: $('mic-select').value });
      $('media-error').hidden = true;
    } catch (e) {
      this.stream = new MediaStream();
      $('media-error').hidden = false;
      $('media-error').textContent = `No camera or microphone (${e.name || e}): you can still join to watch and listen.`;
    }
    // Labels are readable once permission is given: list after opening.
    const video = this.stream.getVideoTracks()[0];
    const audio = this.stream.getAudioTracks()[0];
    await listDevices($('camera-select'), 'videoinput', video?.getSettings().deviceId);
    await listDevices($('mic-select'), 'audioinput', audio?.getSettings().deviceId);
    $('preview').srcObject = this.stream;
    if (audio) this.stopMeter = levelMeter(audio, $('level').firstElementChild);
    this.showCamera();
  }

  showCamera() {
    const on = this.$('cam-on').checked && this.stream?.getVideoTracks().length > 0;
    this.$('preview').hidden = !on;
    this.$('preview-off').hidden = on;
  }

  /**
   * The stream to publish, and whether camera and microphone start on, once the devices
   * chosen last are open. The preview stops.
   */
  async result() {
    const $ = this.$;
    await this.opening?.catch(() => {});
    this.stopMeter();
    const out = { stream: this.stream || new MediaStream(), cameraOn: $('cam-on').checked, micOn: $('mic-on').checked };
    this.stream = null;
    $('preview').srcObject = null;
    return out;
  }

  /** Stops the preview's devices. */
  release() {
    this.stopMeter();
    this.stopMeter = () => {};
    for (const t of this.stream?.getTracks() ?? []) t.stop();
    this.stream = null;
  }
}
