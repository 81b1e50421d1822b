// The live stream (GET /api/events, SSE) and the connection indicator.
//
// The stream carries snapshots: after every change the gateway stored, a
// `transcript.updated` event with the whole transcript as GET /api/transcripts/{id} returns
// it. The page hands each one on as it is (`onSnapshot`); it never rebuilds a transcript.
// Beside them, live-only events without an id, never replayed: `transcript.partial` (the
// words so far while a key is held) goes to `onPartial`; `answer.delta` (the next piece of
// an agent's answer as it is written) to `onAnswerDelta`; `recording.queued` (where an
// upload waits for a transcription worker; `queue` null once one took it) to `onQueued`.
//
// While an EventSource is open the browser reconnects by itself after a drop and sends
// Last-Event-ID, so nothing is missed. If the server refuses a reconnect (an HTTP error,
// e.g. 401 or a proxy's 502) the EventSource closes for good: then we check the session,
// and open a new one with back-off; `onResync` lets the page re-check what it waits for,
// since a new EventSource cannot resume.

import { request } from "./api.js";
import { isSnapshot } from "./snapshot.js";

/** The SSE event name (and `type`) of a stored transcript's snapshot. */
export const SNAPSHOT_EVENT = "transcript.updated";
/** The SSE event name (and `type`) of live partial text. */
export const PARTIAL_EVENT = "transcript.partial";
/** The SSE event name (and `type`) of the next piece of an answer as it is written. */
export const ANSWER_EVENT = "answer.delta";
/** The SSE event name (and `type`) of an upload's place in the transcription queue. */
export const QUEUED_EVENT = "recording.queued";

const LABELS = {
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Reconnecting…",
  offline: "Offline",
  idle: "Not connected",
};

export class LiveConnection {
  /**
   * onSnapshot(transcript, event): `event` is the envelope (event_id, trace_id, …);
   * onPartial(event): {recording_id, text, stable_chars, sequence};
   * onAnswerDelta(event): {recording_id, agent_id, delta, run_id, sequence, part};
   * onQueued(event): {recording_id, queue: {position, ahead, at_least, workers, eta_s} | null}.
   */
  constructor({ indicator, onSnapshot, onPartial = () => {}, onAnswerDelta = () => {}, onQueued = () => {}, onResync, onUnauthorized }) {
    this.indicator = indicator;
    this.onSnapshot = onSnapshot;
    this.onPartial = onPartial;
    this.onAnswerDelta = onAnswerDelta;
    this.onQueued = onQueued;
    this.onResync = onResync;
    this.onUnauthorized = onUnauthorized;
    this.source = null;
    this.retryTimer = 0;
    this.attempt = 0;
    this.running = false;
    this.needsResync = false;
    this.state = "idle";
    window.addEventListener("offline", () => this.running && this.#setState("offline"));
    window.addEventListener("online", () => {
      if (!this.running) return;
      if (!this.source || this.source.readyState === EventSource.CLOSED) this.#reconnectSoon(0);
    });
  }

  start() {
    this.running = true;
    this.indicator.hidden = false;
    this.attempt = 0;
    this.#open();
  }

  stop() {
    this.running = false;
    clearTimeout(this.retryTimer);
    if (this.source) this.source.close();
    this.source = null;
    this.#setState("idle");
    this.indicator.hidden = true;
  }

  #setState(state) {
    this.state = state;
    this.indicator.dataset.state = state;
    const text = this.indicator.querySelector(".connection-text");
    text.textContent = LABELS[state] || state;
    this.indicator.title =
      state === "live" ? "Results arrive live."
      : state === "offline" ? "Not connected: results will show when the connection is back."
      : "Connecting to the live results stream…";
  }

  #open() {
    clearTimeout(this.retryTimer);
    if (this.source) this.source.close();
    this.#setState(this.attempt === 0 && !this.needsResync ? "connecting" : "reconnecting");
    const source = new EventSource("api/events", { withCredentials: true });
    this.source = source;
    source.addEventListener("open", () => {
      if (source !== this.source) return;
      this.attempt = 0;
      this.#setState("live");
      if (this.needsResync) {
        this.needsResync = false;
        this.onResync();
      }
    });
    source.addEventListener("error", () => {
      if (source !== this.source || !this.running) return;
      if (source.readyState === EventSource.CONNECTING) {
        // The browser retries by itself and will resume with Last-Event-ID.
        this.#setState(navigator.onLine === false ? "offline" : "reconnecting");
        return;
      }
      // CLOSED: the server refused (HTTP error). Find out why, then try again later.
      this.needsResync = true;
      this.#setState("offline");
      this.#reconnectSoon();
    });
    // Event types the page does not know yet (live-only ones, say) have their own SSE
    // names, so an EventSource without a listener for them just lets them pass.
    source.addEventListener(SNAPSHOT_EVENT, (message) => {
      if (source !== this.source) return;
      let event;
      try {
        event = JSON.parse(message.data);
      } catch {
        return; // not ours to show
      }
      if (!event || event.type !== SNAPSHOT_EVENT || !isSnapshot(event.transcript)) return;
      this.onSnapshot(event.transcript, event);
    });
    for (const [name, handler] of [
      [PARTIAL_EVENT, (event) => this.onPartial(event)],
      [ANSWER_EVENT, (event) => this.onAnswerDelta(event)],
      [QUEUED_EVENT, (event) => this.onQueued(event)],
    ]) {
      source.addEventListener(name, (message) => {
        if (source !== this.source) return;
        let event;
        try {
          event = JSON.parse(message.data);
        } catch {
          return;
        }
        if (event && event.type === name && typeof event.recording_id === "string") handler(event);
      });
    }
  }

  #reconnectSoon(delayMs) {
    clearTimeout(this.retryTimer);
    const backoff = Math.min(30_000, 1000 * 2 ** Math.min(this.attempt, 5));
    const delay = delayMs ?? backoff * (0.75 + Math.random() * 0.5);
    this.attempt += 1;
    this.retryTimer = setTimeout(async () => {
      if (!this.running) return;
      try {
        await request("api/me", { auth: false });
      } catch (error) {
        if (error.status === 401) {
          this.onUnauthorized(error);
          return;
        }
        if (this.running) this.#reconnectSoon(); // still unreachable: wait longer
        return;
      }
      if (this.running) this.#open();
    }, delay);
  }
}
