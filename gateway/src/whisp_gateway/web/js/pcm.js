// The page's side of the PCM capture (pcm-worklet.js): one AudioWorkletNode on the
// microphone's source, kept for the visit, told to start and stop per press. Also turns the
// captured PCM into a WAV file, so a press whose stream broke can still be uploaded whole.

export const PCM_RATE = 16_000; // what Whisper decodes; the server also takes 24 kHz
export const CHUNK_MS = 100; // one `append` per 100 ms: small enough for live text, few frames

const PROCESSOR = "pcm-capture";

/** True when this browser can run an AudioWorklet on `context`. */
export function canCapturePcm(context) {
  return Boolean(context && context.audioWorklet && typeof window.AudioWorkletNode === "function");
}

export class PcmTap {
  #node;
  #onChunk = null;
  #stopped = null; // resolves the pending stop() when the final chunk arrives

  /** Load the processor into `context` (once per context) and tap `source`. */
  static async create(context, source, rate = PCM_RATE) {
    await context.audioWorklet.addModule(new URL("./pcm-worklet.js", import.meta.url));
    const node = new AudioWorkletNode(context, PROCESSOR, {
      numberOfInputs: 1,
      numberOfOutputs: 1,
      channelCount: 1,
      channelCountMode: "explicit", // the engine down-mixes a stereo mic to mono
      processorOptions: { rate, chunkMs: CHUNK_MS },
    });
    // A node nobody listens to may not be run: feed a silent gain into the output so the
    // graph pulls it, without the microphone ever reaching the speakers.
    const mute = context.createGain();
    mute.gain.value = 0;
    node.connect(mute).connect(context.destination);
    const tap = new PcmTap(node, rate);
    tap.connect(source);
    return tap;
  }

  constructor(node, rate) {
    this.#node = node;
    this.rate = rate;
    this.source = null;
    node.port.onmessage = (event) => {
      const data = event.data;
      if (!data || data.type !== "chunk") return;
      if (this.#onChunk && data.pcm.byteLength) this.#onChunk(data.pcm);
      if (data.final) {
        this.#onChunk = null;
        const done = this.#stopped;
        this.#stopped = null;
        if (done) done();
      }
    };
  }

  /** The microphone's source node changed (a new stream): listen to the new one. */
  connect(source) {
    if (this.source === source) return;
    if (this.source) {
      try {
        this.source.disconnect(this.#node);
      } catch {
        // Already disconnected.
      }
    }
    this.source = source;
    source.connect(this.#node);
  }

  /** Capture from now on; onChunk(ArrayBuffer of PCM16 LE mono) about every CHUNK_MS. */
  start(onChunk) {
    this.#onChunk = onChunk;
    this.#node.port.postMessage({ type: "start" });
  }

  /** Stop capturing; resolves once the last partial chunk was handed to onChunk. */
  stop() {
    if (!this.#onChunk) return Promise.resolve();
    return new Promise((resolve) => {
      this.#stopped = resolve;
      this.#node.port.postMessage({ type: "stop" });
      // The audio thread answers within a render quantum; a suspended context never does.
      setTimeout(() => {
        if (this.#stopped === resolve) {
          this.#stopped = null;
          this.#onChunk = null;
          resolve();
        }
      }, 500);
    });
  }
}

/** A 16-bit mono WAV file of PCM chunks (ArrayBuffers), as the upload path takes it. */
export function wavBlob(chunks, rate) {
  const bytes = chunks.reduce((sum, chunk) => sum + chunk.byteLength, 0);
  const header = new DataView(new ArrayBuffer(44));
  const text = (offset, value) => {
    for (let i = 0; i < value.length; i += 1) header.setUint8(offset + i, value.charCodeAt(i));
  };
  text(0, "RIFF");
  header.setUint32(4, 36 + bytes, true);
  text(8, "WAVE");
  text(12, "fmt ");
  header.setUint32(16, 16, true); // PCM format chunk size
  header.setUint16(20, 1, true); // PCM
  header.setUint16(22, 1, true); // mono
  header.setUint32(24, rate, true);
  header.setUint32(28, rate * 2, true); // bytes per second
  header.setUint16(32, 2, true); // bytes per frame
  header.setUint16(34, 16, true); // bits per sample
  text(36, "data");
  header.setUint32(40, bytes, true);
  return new Blob([header.buffer, ...chunks], { type: "audio/wav" });
}
