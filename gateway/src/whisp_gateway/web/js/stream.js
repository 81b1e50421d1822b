// The Realtime transcription socket (`v1/realtime?intent=transcription`, OpenAI's protocol):
// opened at sign-in and kept between presses, so a press streams from its first chunk.
//
// Push-to-talk: `turn_detection: null`, so one press is one item — appends while held, a
// commit on release (the server answers `input_audio_buffer.committed {item_id}`, the
// item_id being the recording's id in the history), a clear to cancel. The server sends
// `…transcription.delta` with text that will not change; the final text comes as the stored
// snapshot over /api/events, like every other transcript's.
//
// Auth is the session cookie: the socket is same-origin, and the page never sees a token.
// Browsers only report "closed" for a refused handshake (401, 404, …), so any close means:
// not usable now; presses upload instead, and the link reopens with back-off.
//
// The chosen agent travels on the URL (`&agent_id=` / `&pipeline=`, as for uploads): a new
// choice reopens the socket once no press is using it.

import { PCM_RATE } from "./pcm.js";
import { StreamCode, StreamError, Utterance } from "./utterance.js";

const MAX_BACKOFF_MS = 30_000;

/** The route part of the URL: "" for no agent. */
function routeKey(target = {}) {
  if (target.pipeline) return `pipeline=${encodeURIComponent(target.pipeline)}`;
  if (target.agent_id) return `agent_id=${encodeURIComponent(target.agent_id)}`;
  return "";
}

function socketUrl(target) {
  const url = new URL("v1/realtime?intent=transcription", document.baseURI);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  const route = routeKey(target);
  return route ? `${url.href}&${route}` : url.href;
}

export class RealtimeLink {
  /** onState(state): off | connecting | ready | closed (each also set as data-stream). */
  constructor({ onState = () => {}, rate = PCM_RATE } = {}) {
    this.onState = onState;
    this.rate = rate;
    this.state = "off";
    this.socket = null;
    this.running = false;
    this.attempt = 0;
    this.retryTimer = 0;
    this.target = {};
    this.socketKey = null; // routeKey of the socket's URL
    this.reopenWhenIdle = false;
    this.current = null; // the Utterance being held
    this.committing = []; // Utterances whose commit awaits `committed`, in order
    this.byItem = new Map(); // item id → Utterance, until its commit is confirmed
    this.count = 0;
  }

  get ready() {
    return this.state === "ready" && this.socketKey === routeKey(this.target);
  }

  /** Signed in: open the socket (and keep it open). */
  start(target = this.target) {
    this.target = target;
    this.running = true;
    this.attempt = 0;
    this.#open();
  }

  /** Signed out: close for good (a press in progress fails and is uploaded). */
  stop() {
    this.running = false;
    clearTimeout(this.retryTimer);
    this.#drop(new StreamError(StreamCode.CLOSED, "signed out"));
    this.#setState("off");
  }

  /** The agent choice changed: the socket's URL must follow, once no press uses it. */
  setTarget(target) {
    this.target = target;
    if (!this.running || this.socketKey === routeKey(target)) return;
    if (this.current || this.committing.length) this.reopenWhenIdle = true;
    else this.#reconnectNow();
  }

  /** A press found the link down: try again right away instead of waiting out the back-off. */
  kick() {
    if (!this.running || this.state === "connecting" || this.state === "ready") return;
    this.attempt = 0;
    this.#reconnectNow();
  }

  /** A new press on the socket, or null when it cannot stream right now. */
  begin() {
    if (!this.ready || this.current) return null;
    this.count += 1;
    this.current = new Utterance(this, this.count, this.target);
    return this.current;
  }

  // --- used by Utterance ---------------------------------------------------------------

  /** Something is off with this socket: fail what uses it, and open a fresh one. */
  reset(error) {
    if (!this.running) return;
    this.#open(error);
  }

  send(event) {
    const socket = this.socket;
    if (!socket || socket.readyState !== WebSocket.OPEN) return false;
    try {
      socket.send(JSON.stringify(event));
      return true;
    } catch {
      return false;
    }
  }

  queueCommit(utterance) {
    if (this.current === utterance) this.current = null;
    this.committing.push(utterance);
  }

  /** The press no longer needs the socket (committed, cleared, failed). */
  done(utterance) {
    if (this.current === utterance) this.current = null;
    this.committing = this.committing.filter((u) => u !== utterance);
    if (utterance.itemId) this.byItem.delete(utterance.itemId);
    if (this.reopenWhenIdle && this.socket && !this.current && !this.committing.length) {
      this.reopenWhenIdle = false;
      // Later, not inside the handler that is still using this socket.
      setTimeout(() => this.running && this.#reconnectNow(), 0);
    }
  }

  // --- the socket ------------------------------------------------------------------------

  #setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.onState(state);
  }

  #reconnectNow() {
    clearTimeout(this.retryTimer);
    this.#open();
  }

  #open(reason = new StreamError(StreamCode.CLOSED, "the connection was reopened")) {
    clearTimeout(this.retryTimer);
    this.reopenWhenIdle = false;
    this.#drop(reason);
    if (typeof window.WebSocket !== "function") {
      this.#setState("closed"); // no WebSocket at all: uploads only, no retries
      return;
    }
    const key = routeKey(this.target);
    let socket;
    try {
      socket = new WebSocket(socketUrl(this.target), ["realtime"]);
    } catch {
      this.#setState("closed");
      this.#retryLater();
      return;
    }
    this.socket = socket;
    this.socketKey = key;
    this.#setState("connecting");
    socket.addEventListener("message", (message) => {
      if (socket !== this.socket) return;
      let event;
      try {
        event = JSON.parse(message.data);
      } catch {
        return;
      }
      if (event && typeof event.type === "string") this.#handle(event);
    });
    socket.addEventListener("close", () => {
      if (socket !== this.socket) return;
      this.socket = null;
      this.#drop(new StreamError(StreamCode.CLOSED, "the live connection closed"));
      this.#setState(this.running ? "closed" : "off");
      if (this.running) this.#retryLater();
    });
    // "error" is always followed by "close": that is where it is handled.
  }

  /** Close the socket (if any) and fail every press that still needed it. */
  #drop(error) {
    const socket = this.socket;
    this.socket = null;
    this.socketKey = null;
    if (socket) {
      try {
        socket.close(1000);
      } catch {
        // Already closing.
      }
    }
    const pending = [this.current, ...this.committing].filter(Boolean);
    this.current = null;
    this.committing = [];
    this.byItem.clear();
    for (const utterance of pending) utterance.fail(error);
  }

  #retryLater() {
    clearTimeout(this.retryTimer);
    const backoff = Math.min(MAX_BACKOFF_MS, 1000 * 2 ** Math.min(this.attempt, 5));
    this.attempt += 1;
    this.retryTimer = setTimeout(() => this.running && this.#open(), backoff * (0.75 + Math.random() * 0.5));
  }

  #handle(event) {
    switch (event.type) {
      case "session.created":
        this.send({
          type: "session.update",
          event_id: "session_update",
          session: {
            type: "transcription",
            audio: {
              input: {
                format: { type: "audio/pcm", rate: this.rate },
                transcription: {},
                turn_detection: null, // push-to-talk: the release is the commit
              },
            },
          },
        });
        break;
      case "session.updated":
        this.attempt = 0;
        this.#setState("ready");
        break;
      case "input_audio_buffer.committed": {
        const utterance = this.committing.shift();
        if (utterance) utterance.confirm(event.item_id);
        break;
      }
      case "conversation.item.input_audio_transcription.delta": {
        const utterance = this.#utteranceFor(event.item_id);
        if (utterance && typeof event.delta === "string" && event.delta) utterance.onDelta(event.delta);
        break;
      }
      case "error":
        this.#error(event.error || {});
        break;
      default:
        // session.updated again, cleared, completed, failed: the snapshot over /api/events
        // brings the outcome to the card, with the agent's answer.
        break;
    }
  }

  /** The press an item belongs to; the first item named while a press is held is its own. */
  #utteranceFor(itemId) {
    if (!itemId) return null;
    const known = this.byItem.get(itemId) || [...this.committing, this.current].find((u) => u && u.itemId === itemId);
    if (known) return known;
    const current = this.current;
    if (current && !current.itemId) {
      current.identify(itemId);
      this.byItem.set(itemId, current);
      return current;
    }
    return null;
  }

  #error(error) {
    const code = typeof error.code === "string" && error.code ? error.code : "error";
    const failure = new StreamError(code, typeof error.message === "string" ? error.message : "the live transcription failed");
    const about = typeof error.event_id === "string" ? error.event_id : "";
    if (about === "session_update") {
      // The server does not take what we stream: this socket is no use.
      this.#drop(failure);
      this.#setState("closed");
      this.#retryLater();
      return;
    }
    const number = Number((/^(?:append|commit)_(\d+)/.exec(about) || [])[1]);
    const utterance = [this.current, ...this.committing].find((u) => u && u.number === number);
    if (utterance) utterance.fail(failure);
  }
}
