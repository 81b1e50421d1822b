// "This session": one card (card.js) per clip, from release to answer.
//
// A card is created when a clip is released and, once uploaded, shows the newest snapshot
// of its recording as the server stored it. The first snapshot of an upload can overtake
// the upload's own answer, so snapshots of unknown recordings are held while an upload is
// in flight; those still unclaimed afterwards are recordings made elsewhere (the CLI,
// another tab or device) and get a card of their own. A watchdog asks
// GET /api/transcripts/{id} (the same snapshot) while a card waits, because a stream that
// had to be reopened cannot resume: a card never waits forever.

import { request } from "./api.js";
import { ResultCard } from "./card.js";
import { agentFailureText, agentFailureTitle } from "./failures.js";
import { isOlder, targetName } from "./snapshot.js";

const WATCH_FIRST_MS = 15_000;
const WATCH_EVERY_MS = 15_000;
const WATCH_GIVE_UP_MS = 10 * 60_000;

export class LiveResults {
  /**
   * hooks: nameOf(id, kind), announce(text, {kind, code, title, detail}), onEmpty(isEmpty),
   * onFetched(snapshot) (the watchdog fetched a snapshot: the history wants it too),
   * onHeld(snapshot) (one of an unknown recording was held: maybe a streaming press's)
   */
  constructor(list, hooks) {
    this.list = list;
    this.hooks = hooks;
    this.cards = new Map(); // recording_id → card
    this.held = new Map(); // recording_id → newest snapshot, while uploads are in flight
    this.inFlight = 0;
  }

  clear() {
    for (const card of this.allCards()) card.remove();
    this.cards.clear();
    this.held.clear();
    this.list.replaceChildren();
    this.hooks.onEmpty(true);
  }

  allCards() {
    return [...this.list.children].map((el) => el._card).filter(Boolean);
  }

  #add(options) {
    const card = new ResultCard({ ...options, nameOf: this.hooks.nameOf });
    this.list.prepend(card.el);
    this.hooks.onEmpty(false);
    return card;
  }

  #register(card, recordingId) {
    card.setRecordingId(recordingId);
    this.cards.set(recordingId, card);
  }

  // --- the upload's side -----------------------------------------------------

  /** A released clip: a card in "uploading". target: {agent_id?, pipeline?, name?} */
  addClip({ durationMs, target }) {
    return this.#add({ target, durationS: durationMs / 1000, via: "upload" });
  }

  uploadStarted(card) {
    this.inFlight += 1;
    card.uploadStarted();
  }

  uploadProgress(card, fraction) {
    card.uploadProgress(fraction);
  }

  /** The upload's answer: {recording_id, duration_s, queue?, transcript?} (transcript with ?wait). */
  uploadSucceeded(card, { recording_id: recordingId, duration_s: durationS, queue, transcript }) {
    this.inFlight = Math.max(0, this.inFlight - 1);
    this.#register(card, recordingId);
    card.setDuration(durationS);
    card.awaitResult();
    card.showQueue(queue ?? null);
    const held = this.held.get(recordingId);
    this.held.delete(recordingId);
    for (const snapshot of [held, transcript]) if (snapshot) this.#show(card, snapshot);
    this.#watch(card);
    this.#flushHeld();
  }

  /** text: what to tell the person; retry: () => void or null; retryAt: ms timestamp */
  uploadFailed(card, { text, retry = null, retryAt = null }) {
    this.inFlight = Math.max(0, this.inFlight - 1);
    card.unsent({ text, retry, retryAt });
    this.#flushHeld();
  }

  /** The clip could not even be sent (gone): drop the card. */
  discard(card) {
    card.remove();
    this.hooks.onEmpty(this.list.children.length === 0);
  }

  // --- a streamed press's side (streamed.js) -----------------------------------
  //
  // While a press streams, its recording's first snapshot ("processing", when the server
  // opened it) can come before this page knows its id: from press to `committed` the press
  // counts as in flight, so such snapshots are held, as for an upload.

  /** True when a card here shows `recordingId`. */
  knows(recordingId) {
    return this.cards.has(recordingId);
  }

  /** A streamed press began. */
  expectStream() {
    this.inFlight += 1;
  }

  /** It ended without a card (cancelled, too short, or now an upload); its snapshots go. */
  streamDropped(recordingId) {
    this.inFlight = Math.max(0, this.inFlight - 1);
    if (recordingId) this.held.delete(recordingId);
    this.#flushHeld();
  }

  /** Released: a card that waits for the commit (still in flight); registered if the id is known. */
  addStream({ durationMs, target, recordingId }) {
    const card = this.#add({ target, durationS: durationMs / 1000, via: "stream" });
    card.finishing();
    if (recordingId) this.#register(card, recordingId);
    return card;
  }

  /** The server has the whole press: `recordingId`'s snapshots are this card's. */
  streamCommitted(card, recordingId) {
    this.inFlight = Math.max(0, this.inFlight - 1);
    if (card.recordingId && card.recordingId !== recordingId) this.cards.delete(card.recordingId);
    this.#register(card, recordingId);
    card.awaitResult();
    const held = this.held.get(recordingId);
    this.held.delete(recordingId);
    if (held) this.#show(card, held);
    this.#watch(card);
    this.#flushHeld();
  }

  /** The commit failed: the card becomes an upload's (uploadStarted counts it again). */
  streamAbandoned(card) {
    this.inFlight = Math.max(0, this.inFlight - 1);
    if (card.recordingId) {
      this.cards.delete(card.recordingId);
      this.held.delete(card.recordingId);
      card.setRecordingId("");
    }
    card.setVia("upload");
  }

  // --- snapshots -------------------------------------------------------------

  /** Show a snapshot on its card; a recording without a card yet is held or gets one. */
  apply(t) {
    const card = this.cards.get(t.recording_id);
    if (card) {
      this.#show(card, t);
      return;
    }
    if (this.inFlight > 0) {
      // Maybe the recording of an upload whose answer is still on its way back.
      if (!isOlder(t, this.held.get(t.recording_id))) this.held.set(t.recording_id, t);
      if (this.hooks.onHeld) this.hooks.onHeld(t);
      return;
    }
    this.#adopt(t);
  }

  #flushHeld() {
    if (this.inFlight > 0) return;
    const held = [...this.held.values()];
    this.held.clear();
    for (const t of held) this.#adopt(t);
  }

  /** A recording made elsewhere (the CLI, another tab or device): a card of its own. */
  #adopt(t) {
    const card = this.#add({
      durationS: t.duration_s ?? null,
      createdAt: t.created_at ? new Date(t.created_at) : new Date(),
      origin: "elsewhere",
    });
    this.#register(card, t.recording_id);
    card.awaitResult();
    this.#show(card, t);
    this.#watch(card);
  }

  #show(card, t) {
    const before = card.shown;
    if (card.showSnapshot(t)) this.#announce(card, before, t);
  }

  /** Say what is new in `t` since `before` (the snapshot the card showed until now). */
  #announce(card, before, t) {
    const { announce, nameOf } = this.hooks;
    if (card.status === "failed") {
      const repeated = before && before.status === "failed" && before.error_code === t.error_code;
      if (!repeated) announce(card.error.textContent, { kind: "error", code: t.error_code || "" });
      return;
    }
    const textIsNew = t.status === "done" && !(before && before.status === "done" && before.text === t.text);
    if (textIsNew) {
      if (card.status === "empty") announce("No speech was heard in that clip.");
      else if (card.status === "thinking") announce(`Transcript ready; asking ${card.agentName()}…`, { detail: shorten(t.text) });
      else announce("Transcript ready.", { detail: shorten(t.text) });
    }
    const known = new Set(((before && before.answers) || []).map((a) => a.event_id));
    for (const answer of t.answers || []) {
      if (known.has(answer.event_id)) continue;
      const name = targetName(answer, nameOf) || card.agentName();
      if (answer.status === "done") announce(`Answer from ${name}.`, { detail: shorten(answer.output) });
      else {
        announce(agentFailureText(answer.error_code, answer.error_message, name), {
          kind: "error",
          code: answer.error_code || "",
          title: agentFailureTitle(answer.error_code),
        });
      }
    }
  }

  /** Where a recording waits for a worker (`recording.queued`), to its card (if any). */
  queued(event) {
    const card = this.cards.get(event.recording_id);
    if (card) card.showQueue(event.queue ?? null);
  }

  /** The next piece of an answer as it is written, to its recording's card (if any). */
  answerDelta(event) {
    const card = this.cards.get(event.recording_id);
    if (card) card.showAnswerDelta(event);
  }

  // --- the watchdog ----------------------------------------------------------

  #watch(card) {
    clearTimeout(card.watchTimer);
    if (!card.watchSince) card.watchSince = Date.now();
    if (card.waiting) card.watchTimer = setTimeout(() => this.#poll(card), WATCH_FIRST_MS);
  }

  async #poll(card) {
    const current = () => this.cards.get(card.recordingId) === card; // not deleted meanwhile
    if (!card.recordingId || !current() || !card.waiting) return;
    try {
      const snapshot = await request(`api/transcripts/${encodeURIComponent(card.recordingId)}`);
      if (!current()) return;
      this.#show(card, snapshot);
      this.hooks.onFetched(snapshot);
    } catch {
      // 404 (not stored yet), offline…: keep waiting.
    }
    if (!card.waiting) return;
    if (Date.now() - card.watchSince > WATCH_GIVE_UP_MS) {
      card.stillWaiting();
      return;
    }
    clearTimeout(card.watchTimer);
    card.watchTimer = setTimeout(() => this.#poll(card), WATCH_EVERY_MS);
  }

  /** After the stream was closed and reopened: re-check every card still waiting. */
  resync() {
    for (const card of this.cards.values()) {
      if (card.waiting) {
        clearTimeout(card.watchTimer);
        this.#poll(card);
      }
    }
  }

  /** The transcript was deleted from history: drop its card too. */
  remove(recordingId) {
    const card = this.cards.get(recordingId);
    if (!card) return;
    this.cards.delete(recordingId);
    card.remove();
    this.hooks.onEmpty(this.list.children.length === 0);
  }
}

function shorten(text, max = 240) {
  const clean = String(text || "").replace(/\s+/g, " ").trim();
  return clean.length > max ? `${clean.slice(0, max - 1)}…` : clean;
}
