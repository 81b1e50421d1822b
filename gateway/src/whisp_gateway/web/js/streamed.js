// A press that streams: the PCM tap feeds the Realtime socket while the button is held, the
// words so far grow under the button, and the release commits. talk.js drives it like a
// MediaRecorder clip (start, stop → clip, cancel); everything streaming-specific is here.
//
// The press keeps its PCM until the server confirmed the commit, so if the stream breaks
// (the socket closes, the server answers an append with an error, no `committed` comes) the
// very same audio is uploaded as a WAV file through the ordinary upload path: a broken
// stream costs latency, never the words.
//
// Which recording is this press's? The socket's deltas and `committed` name it
// (authoritative). Earlier than that, the first recording nobody on this page knows that
// shows up while the press is held (its "processing" snapshot or a partial on /api/events)
// is taken to be it, so partial words show from the first one; a delta naming another
// corrects it.

import { PartialText } from "./partial.js";
import { wavBlob } from "./pcm.js";

class StreamedRecording {
  constructor(streamer, press, tap) {
    this.streamer = streamer;
    this.press = press;
    this.tap = tap;
    this.chunks = [];
    this.bytes = 0;
    this.startedAt = null;
  }

  start() {
    this.startedAt = performance.now();
    this.tap.start((pcm) => {
      this.chunks.push(pcm);
      this.bytes += pcm.byteLength;
      this.press.utterance.append(pcm);
    });
  }

  get durationMs() {
    return (this.bytes / 2 / this.tap.rate) * 1000;
  }

  wav() {
    return wavBlob(this.chunks, this.tap.rate);
  }

  /** Released: the last chunk goes out, then the clip ({kind: "stream"} or, broken, "upload"). */
  async stop() {
    await this.tap.stop();
    const { utterance } = this.press;
    const durationMs = this.durationMs;
    if (utterance.state !== "open") {
      // Broken while held: the press is an upload now.
      this.streamer.end(this.press);
      return {
        kind: "upload",
        blob: this.wav(),
        mimeType: "audio/wav",
        durationMs,
        empty: this.bytes === 0,
        streamError: utterance.error,
      };
    }
    return {
      kind: "stream",
      durationMs,
      target: utterance.target,
      empty: this.bytes === 0 || utterance.sentBytes === 0,
      discard: () => this.streamer.discard(this.press),
      send: (target) => this.streamer.deliver(this.press, this, target),
    };
  }

  /** Esc, sign-out: nothing is sent. */
  async cancel() {
    await this.tap.stop();
    this.streamer.discard(this.press);
  }
}

export class Streamer {
  /**
   * link: RealtimeLink; line: PartialLine; live: LiveResults; sendClip(card, clip, target)
   * (the upload path); hooks: onInterrupted(StreamError) (the stream broke while held),
   * onFallback(StreamError) (a released press goes out as an upload instead),
   * onStatus(text).
   */
  constructor({ link, line, live, sendClip, hooks }) {
    this.link = link;
    this.line = line;
    this.live = live;
    this.sendClip = sendClip;
    this.hooks = hooks;
    this.press = null; // the press being held: {utterance, text, recordingId, card}
    this.texts = new Map(); // recording id → its press, while its words may still change
  }

  /** A streamed recording for this press, or null: then the press records and uploads. */
  async begin(mic) {
    if (!this.link.ready) {
      this.link.kick(); // maybe it is back: the next press will know
      return null;
    }
    const tap = await mic.pcmTap();
    if (!tap) return null;
    const utterance = this.link.begin();
    if (!utterance) return null;
    const press = { utterance, text: new PartialText(), recordingId: "", card: null };
    utterance.onItem = (id) => this.#identify(press, id);
    utterance.onDelta = (delta) => {
      press.text.fromDelta(delta);
      this.#draw(press);
    };
    utterance.onFail = (error) => {
      if (this.press === press) this.line.interrupted();
      this.hooks.onInterrupted(error);
    };
    this.press = press;
    this.live.expectStream();
    this.line.show();
    const recording = new StreamedRecording(this, press, tap);
    recording.start();
    return recording;
  }

  // --- what /api/events says -------------------------------------------------------------

  /** A `transcript.partial` event (from any of this person's devices). */
  partial(event) {
    const id = event && event.recording_id;
    if (typeof id !== "string" || !id) return;
    let press = this.texts.get(id);
    if (!press && this.#claimable(id)) press = this.#identify(this.press, id, { claimed: true });
    if (press && press.text.fromEvent(event)) this.#draw(press);
  }

  /** A snapshot of a recording this page has no card for, seen while a press streams. */
  unknownSnapshot(t) {
    if (t.status === "processing" && this.#claimable(t.recording_id)) {
      this.#identify(this.press, t.recording_id, { claimed: true });
    }
  }

  #claimable(id) {
    const press = this.press;
    return Boolean(press && !press.recordingId && !press.utterance.itemId && !this.live.knows(id));
  }

  #identify(press, id, { claimed = false } = {}) {
    if (!press || !id) return null;
    if (claimed && press.utterance.itemId) return null; // the server already said which
    if (press.recordingId && press.recordingId !== id) this.texts.delete(press.recordingId);
    press.recordingId = id;
    this.texts.set(id, press);
    if (this.press === press) this.line.identify(id);
    return press;
  }

  #draw(press) {
    if (press.card) press.card.showPartial(press.text.parts());
    else if (this.press === press) this.line.draw(press.text);
  }

  // --- the end of a press ------------------------------------------------------------------

  /** The press is over without a card of its own (cancelled, too short, or now an upload). */
  end(press) {
    if (this.press === press) {
      this.press = null;
      this.line.clear();
    }
    if (press.recordingId) this.texts.delete(press.recordingId);
    this.live.streamDropped(press.recordingId);
  }

  /** Cancelled or too short: the server drops it. */
  discard(press) {
    press.utterance.clear();
    this.end(press);
  }

  /**
   * Released: the card takes over the words so far (the line under the button empties), the
   * commit goes out, and the recording's snapshot will land on that card. A commit that
   * fails uploads the same audio instead, on the same card.
   */
  async deliver(press, recording, target) {
    this.press = null;
    this.line.clear();
    const card = this.live.addStream({ durationMs: recording.durationMs, target, recordingId: press.recordingId });
    press.card = card;
    if (!press.text.empty) card.showPartial(press.text.parts());
    this.hooks.onStatus("Finishing…");
    let itemId;
    try {
      itemId = await press.utterance.commit();
    } catch (error) {
      if (press.recordingId) this.texts.delete(press.recordingId);
      this.live.streamAbandoned(card);
      this.hooks.onFallback(error);
      this.sendClip(card, { blob: recording.wav(), mimeType: "audio/wav", durationMs: recording.durationMs }, target);
      return;
    }
    recording.chunks = []; // the server has it: the fallback copy can go
    if (press.recordingId !== itemId) this.#identify(press, itemId);
    this.live.streamCommitted(card, itemId);
    // Words that still come (the last partial) go to the card until its final snapshot.
    setTimeout(() => {
      if (this.texts.get(itemId) === press) this.texts.delete(itemId);
    }, 60_000);
  }
}
