// The audio thread's side of streaming (an AudioWorklet processor, loaded with
// audioWorklet.addModule; it is not an ES module the page imports).
//
// It takes the microphone at the AudioContext's rate (48 kHz or 44.1 kHz, usually), low-pass
// filters and resamples it to the rate the server asked for (16 kHz: what Whisper decodes,
// a third of the bytes of 48 kHz), converts to PCM16 little-endian mono and posts one chunk
// per `chunkMs` to the page. Only while told to capture: between presses it costs nothing.
//
// Port messages in:  {type: "start"}  begin a new utterance (fresh filter state, no carry-over)
//                    {type: "stop"}   post what is left as the final chunk, then idle
// Port messages out: {type: "chunk", pcm: ArrayBuffer (transferred), final: bool}

const PHASES = 64; // fractional positions in the filter table (44.1 kHz → 16 kHz needs them)
const TAPS_PER_RATIO = 8; // filter half-width, in output samples: −60 dB stop band or so
const CUTOFF = 0.9; // of the output's Nyquist frequency: keeps the speech band, stops aliasing

/** A windowed-sinc low-pass for every fractional phase, each normalised to unit gain. */
function filterTable(ratio, half) {
  const fc = (0.5 * CUTOFF) / ratio; // cycles per input sample
  const table = [];
  for (let p = 0; p <= PHASES; p += 1) {
    const frac = p / PHASES;
    const taps = new Float32Array(2 * half);
    let sum = 0;
    for (let k = -half + 1; k <= half; k += 1) {
      const x = k - frac;
      const sinc = x === 0 ? 2 * fc : Math.sin(2 * Math.PI * fc * x) / (Math.PI * x);
      const w = x / half; // Blackman window over [-half, half]
      const window = Math.abs(w) >= 1 ? 0 : 0.42 + 0.5 * Math.cos(Math.PI * w) + 0.08 * Math.cos(2 * Math.PI * w);
      const value = sinc * window;
      taps[k + half - 1] = value;
      sum += value;
    }
    for (let i = 0; i < taps.length; i += 1) taps[i] /= sum;
    table.push(taps);
  }
  return table;
}

class PcmCapture extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const { rate = 16_000, chunkMs = 100 } = (options && options.processorOptions) || {};
    this.ratio = sampleRate / rate; // input samples per output sample (`sampleRate` is global here)
    this.half = this.ratio > 1 ? Math.ceil(this.ratio * TAPS_PER_RATIO) : 1;
    this.table = this.ratio > 1 ? filterTable(this.ratio, this.half) : null;
    this.history = new Float32Array(4 * this.half + 4096);
    this.chunkSamples = Math.max(1, Math.round((rate * chunkMs) / 1000));
    this.capturing = false;
    this.#reset();
    this.port.onmessage = (event) => {
      const type = event.data && event.data.type;
      if (type === "start") {
        this.#reset();
        this.capturing = true;
      } else if (type === "stop") {
        this.capturing = false;
        this.#post(true);
      }
    };
  }

  #reset() {
    // `half` zeros in front: the first output sample has its whole filter window.
    this.history.fill(0);
    this.length = this.half;
    this.position = this.half; // input index (fractional) of the next output sample
    this.chunk = new Int16Array(this.chunkSamples);
    this.filled = 0;
  }

  #post(final) {
    const pcm = this.chunk.slice(0, this.filled).buffer;
    this.port.postMessage({ type: "chunk", pcm, final }, [pcm]);
    this.chunk = new Int16Array(this.chunkSamples);
    this.filled = 0;
  }

  #emit(value) {
    const s = value > 1 ? 1 : value < -1 ? -1 : value;
    this.chunk[this.filled] = s < 0 ? s * 0x8000 : s * 0x7fff;
    this.filled += 1;
    if (this.filled === this.chunkSamples) this.#post(false);
  }

  #resample() {
    const { history, half, ratio, table } = this;
    // The window reaches `half` samples past the position (one more when the phase rounds up).
    while (this.position + half + 1 < this.length) {
      let index = Math.floor(this.position);
      let value;
      if (!table) {
        // Same rate or up-sampling (a 16 kHz context): linear interpolation is plenty.
        const frac = this.position - index;
        value = history[index] + (history[index + 1] - history[index]) * frac;
      } else {
        let phase = Math.round((this.position - index) * PHASES);
        if (phase === PHASES) {
          phase = 0;
          index += 1;
        }
        const taps = table[phase];
        const start = index - half + 1;
        value = 0;
        for (let k = 0; k < taps.length; k += 1) value += history[start + k] * taps[k];
      }
      this.#emit(value);
      this.position += ratio;
    }
    // Keep only what the next output samples' windows still need.
    const drop = Math.max(0, Math.floor(this.position) - half);
    if (drop > 0) {
      history.copyWithin(0, drop, this.length);
      this.length -= drop;
      this.position -= drop;
    }
  }

  process(inputs) {
    if (!this.capturing) return true;
    const channel = inputs[0] && inputs[0][0]; // the node down-mixes to one channel
    if (!channel) return true; // no input connected (yet)
    this.history.set(channel, this.length);
    this.length += channel.length;
    this.#resample();
    return true;
  }
}

registerProcessor("pcm-capture", PcmCapture);
