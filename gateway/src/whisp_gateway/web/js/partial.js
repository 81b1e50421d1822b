// Words while the button is held: the live-only partial text of one recording, drawn with
// its settled part as normal text and the tentative rest dimmed.
//
// Two sources say the same thing at about the same time, and either may be missing: the
// `transcript.partial` events on /api/events ({text, stable_chars, sequence}: the words so
// far, the first stable_chars settled) and the socket's `…transcription.delta`s (settled
// text only, appended). Whichever says more is shown. Partials are never stored: the
// snapshot that follows them (the card's) is the outcome.

import { h } from "./ui.js";

export class PartialText {
  constructor() {
    this.sequence = -1;
    this.text = ""; // from /api/events
    this.stableChars = 0;
    this.deltas = ""; // from the socket: settled text only
  }

  /** A `transcript.partial` event; false when it is older than one already seen. */
  fromEvent(event) {
    const sequence = Number(event.sequence);
    if (!(sequence > this.sequence) || typeof event.text !== "string") return false;
    this.sequence = sequence;
    this.text = event.text;
    this.stableChars = Math.max(0, Math.min(event.text.length, Number(event.stable_chars) || 0));
    return true;
  }

  fromDelta(delta) {
    this.deltas += delta;
    return true;
  }

  /** {settled, tentative} to draw. */
  parts() {
    if (this.deltas.length > this.text.length || (this.deltas.length > this.stableChars && !this.text.startsWith(this.deltas))) {
      return { settled: this.deltas, tentative: "" };
    }
    return { settled: this.text.slice(0, this.stableChars), tentative: this.text.slice(this.stableChars) };
  }

  get empty() {
    return !this.text.trim() && !this.deltas.trim();
  }
}

/** The two spans of a partial line, for `renderPartial`. */
export function partialSpans() {
  return [h("span", { class: "partial-settled" }), h("span", { class: "partial-tentative" })];
}

/** Draw `parts` ({settled, tentative}) into an element made with partialSpans(). */
export function renderPartial(el, { settled, tentative }) {
  const [settledEl, tentativeEl] = el.children;
  settledEl.textContent = settled;
  tentativeEl.textContent = tentative;
  el.dataset.empty = settled.trim() || tentative.trim() ? "false" : "true";
}

/**
 * The line under the talk button (#partial): shown while a streamed press is held.
 * data-state: listening (nothing yet) | live (words) | interrupted (the stream broke: the
 * press is uploaded at release); data-recording-id once the server named the recording.
 */
export class PartialLine {
  constructor(el) {
    this.el = el;
    el.replaceChildren(...partialSpans());
    this.clear();
  }

  show(recordingId = "") {
    this.el.hidden = false;
    this.el.dataset.state = "listening";
    this.el.dataset.recordingId = recordingId;
    renderPartial(this.el, { settled: "", tentative: "" });
  }

  identify(recordingId) {
    this.el.dataset.recordingId = recordingId || "";
  }

  draw(text) {
    if (this.el.hidden) return;
    renderPartial(this.el, text.parts());
    if (this.el.dataset.state !== "interrupted") this.el.dataset.state = text.empty ? "listening" : "live";
  }

  /** The stream broke while held: the words stop growing (the audio is kept and uploaded). */
  interrupted() {
    if (!this.el.hidden) this.el.dataset.state = "interrupted";
  }

  clear() {
    this.el.hidden = true;
    this.el.dataset.state = "idle";
    this.el.dataset.recordingId = "";
    renderPartial(this.el, { settled: "", tentative: "" });
  }
}
