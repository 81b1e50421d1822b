// The browser microphone: one getUserMedia stream kept for the whole visit, a level meter
// (AnalyserNode RMS), a PCM tap for streaming (pcm.js) on the same source, and one
// MediaRecorder per clip for the upload path.

import { PcmTap, canCapturePcm } from "./pcm.js";

export const MAX_RECORDING_MS = 5 * 60 * 1000;
export const MIN_RECORDING_MS = 300;

// Chromium and Firefox record Opus in WebM (Firefox also Ogg); Safari records MP4/AAC.
const MIME_CANDIDATES = [
  "audio/webm;codecs=opus",
  "audio/webm",
  "audio/ogg;codecs=opus",
  "audio/mp4;codecs=mp4a.40.2",
  "audio/mp4",
  "audio/aac",
];
const BITS_PER_SECOND = 64_000; // plenty for speech; 5 minutes ≈ 2.4 MB

export function pickMimeType() {
  if (typeof MediaRecorder === "undefined" || !MediaRecorder.isTypeSupported) return "";
  for (const type of MIME_CANDIDATES) {
    try {
      if (MediaRecorder.isTypeSupported(type)) return type;
    } catch {
      // Some browsers throw for types they do not know: try the next one.
    }
  }
  return "";
}

const EXTENSIONS = {
  "audio/webm": "webm",
  "video/webm": "webm",
  "audio/ogg": "ogg",
  "audio/mp4": "m4a",
  "video/mp4": "m4a",
  "audio/x-m4a": "m4a",
  "audio/aac": "aac",
  "audio/mpeg": "mp3",
  "audio/wav": "wav",
  "audio/x-wav": "wav",
};

/** "clip.webm" for "audio/webm;codecs=opus", and so on. */
export function fileNameFor(mimeType) {
  const base = String(mimeType || "").split(";")[0].trim().toLowerCase();
  return `clip.${EXTENSIONS[base] || "webm"}`;
}

export class MicError extends Error {
  constructor(kind, message) {
    super(message);
    this.name = "MicError";
    this.kind = kind; // denied | missing | busy | insecure | unsupported | unknown
  }
}

function micErrorFrom(error) {
  switch (error && error.name) {
    case "NotAllowedError":
    case "PermissionDeniedError":
    case "SecurityError":
      return new MicError(
        "denied",
        "Microphone access is blocked for this page. To allow it: click the lock or " +
          "site-settings icon at the left of the address bar, set Microphone to “Allow”, " +
          "then press the button again. On a phone: browser settings → Site settings → " +
          "Microphone. If your system blocks the browser, allow it in the system's privacy " +
          "settings too.",
      );
    case "NotFoundError":
    case "DevicesNotFoundError":
    case "OverconstrainedError":
      return new MicError(
        "missing",
        "No microphone was found. Plug one in (or switch it on in your system's sound " +
          "settings), then press the button again.",
      );
    case "NotReadableError":
    case "TrackStartError":
    case "AbortError":
      return new MicError(
        "busy",
        "The microphone could not be started: another app may be using it, or the system " +
          "blocked it. Close other apps that use the microphone and try again.",
      );
    default:
      return new MicError(
        "unknown",
        `The microphone could not be started (${(error && error.message) || error}). ` +
          "Reload the page and try again.",
      );
  }
}

export class Microphone {
  #stream = null;
  #context = null;
  #source = null;
  #analyser = null;
  #samples = null;
  #tap = null; // a PcmTap, or a promise of one while the worklet loads

  /** True while we hold a live microphone stream. */
  get ready() {
    return Boolean(this.#stream && this.#stream.getAudioTracks().some((t) => t.readyState === "live"));
  }

  get stream() {
    return this.#stream;
  }

  /** Create or resume the AudioContext; call synchronously inside the user's gesture. */
  wake() {
    try {
      if (!this.#context) {
        const Context = window.AudioContext || window.webkitAudioContext;
        if (Context) this.#context = new Context();
      }
      if (this.#context && this.#context.state === "suspended") this.#context.resume().catch(() => {});
    } catch {
      this.#context = null; // no level meter, recording still works
    }
  }

  /** Ask for the microphone once; later calls reuse the stream while it is live. */
  async acquire() {
    if (this.ready) return this.#stream;
    if (!window.isSecureContext || !navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      throw new MicError(
        "insecure",
        "This page cannot use the microphone because it was not opened over a secure " +
          "connection. Open it over https:// (or as http://localhost on the same computer).",
      );
    }
    if (typeof window.MediaRecorder === "undefined") {
      throw new MicError(
        "unsupported",
        "This browser cannot record audio. Use a current Chrome, Edge, Firefox or Safari.",
      );
    }
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({
        audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
      });
    } catch (error) {
      throw micErrorFrom(error);
    }
    if (this.#stream) this.#stream.getTracks().forEach((t) => t.stop());
    this.#stream = stream;
    this.#connectAnalyser();
    return stream;
  }

  #connectAnalyser() {
    this.#analyser = null;
    if (!this.#context || !this.#stream) return;
    try {
      if (this.#source) this.#source.disconnect();
      this.#source = this.#context.createMediaStreamSource(this.#stream);
      const analyser = this.#context.createAnalyser();
      analyser.fftSize = 2048;
      analyser.smoothingTimeConstant = 0;
      this.#source.connect(analyser);
      this.#samples = new Float32Array(analyser.fftSize);
      this.#analyser = analyser;
      if (this.#tap instanceof PcmTap) this.#tap.connect(this.#source);
    } catch {
      this.#analyser = null;
    }
  }

  /**
   * The PCM tap on the live microphone (after acquire()), or null where this browser cannot
   * stream: no AudioWorklet, or an AudioContext that will not run. The first call loads the
   * worklet; later ones are instant.
   */
  async pcmTap() {
    const context = this.#context;
    if (!canCapturePcm(context) || !this.#source) return null;
    if (context.state !== "running") {
      // wake() asked inside the gesture; a context that still will not run captures nothing.
      await Promise.race([context.resume().catch(() => {}), new Promise((r) => setTimeout(r, 300))]);
      if (context.state !== "running") return null;
    }
    if (!this.#tap) {
      this.#tap = PcmTap.create(context, this.#source).catch(() => null);
      this.#tap = await this.#tap;
      return this.#tap;
    }
    const tap = await this.#tap;
    if (tap) tap.connect(this.#source);
    return tap;
  }

  /** Input level 0…1: RMS of the last ~40 ms in dBFS, mapped from -60 dB (0) to 0 dB (1). */
  level() {
    if (!this.#analyser) return 0;
    this.#analyser.getFloatTimeDomainData(this.#samples);
    let sum = 0;
    for (let i = 0; i < this.#samples.length; i += 1) sum += this.#samples[i] * this.#samples[i];
    const rms = Math.sqrt(sum / this.#samples.length);
    if (!(rms > 0)) return 0;
    const db = 20 * Math.log10(rms);
    return Math.min(1, Math.max(0, (db + 60) / 60));
  }
}

/** One clip: starts recording at construction; stop() resolves with the audio. */
export class Recording {
  constructor(stream) {
    const preferred = pickMimeType();
    this.chunks = [];
    this.startedAt = null;
    this.mimeType = preferred;
    try {
      this.recorder = new MediaRecorder(stream, {
        ...(preferred ? { mimeType: preferred } : {}),
        audioBitsPerSecond: BITS_PER_SECOND,
      });
    } catch {
      this.recorder = new MediaRecorder(stream); // let the browser choose
    }
    this.recorder.addEventListener("dataavailable", (event) => {
      if (event.data && event.data.size > 0) this.chunks.push(event.data);
    });
    this.recorder.addEventListener("start", () => {
      this.startedAt = performance.now();
      // Only now is the real container/codec known.
      if (this.recorder.mimeType) this.mimeType = this.recorder.mimeType;
    });
    this.recorder.start(1000);
  }

  get state() {
    return this.recorder.state;
  }

  /** Stop and collect: {kind: "upload", blob, mimeType, durationMs, empty}. */
  stop() {
    const stoppedAt = performance.now();
    return new Promise((resolve) => {
      const done = () => {
        const type = this.mimeType || this.recorder.mimeType || "audio/webm";
        const blob = new Blob(this.chunks, { type });
        resolve({
          kind: "upload",
          blob,
          mimeType: type,
          durationMs: this.startedAt == null ? 0 : Math.max(0, stoppedAt - this.startedAt),
          empty: blob.size === 0,
        });
      };
      if (this.recorder.state === "inactive") {
        done();
        return;
      }
      this.recorder.addEventListener("stop", done, { once: true });
      try {
        this.recorder.stop();
      } catch {
        done();
      }
    });
  }

  /** Stop and throw the audio away (cancel). */
  async cancel() {
    await this.stop();
    this.chunks = [];
  }
}
