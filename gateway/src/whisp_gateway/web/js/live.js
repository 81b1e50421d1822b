// "This session": one card per clip, from release to answer.
//
// A card is created when a clip is released (data-recording-id="" until the upload
// answers), then follows the live events matched by recording_id:
//   uploading → transcribing → (thinking, when an agent was asked) → done | failed
// Events can overtake the upload's answer, so events for ids we do not know yet are held
// while an upload is in flight; any left over afterwards belong to recordings made
// elsewhere (the CLI, another tab) and get a card of their own.
// A watchdog asks GET /api/transcripts/{id} when events are late (a closed stream
// cannot resume), so a card never waits forever.

import { request } from "./api.js";
import { agentFailureText, answerFromEvent, renderAnswers, transcriptionFailureText } from "./render.js";
import { copyButton, h, timeElement } from "./ui.js";

const BADGES = {
  uploading: "Uploading…",
  transcribing: "Transcribing…",
  thinking: "Waiting for the answer…",
  done: "Done",
  empty: "No speech",
  failed: "Failed",
  unsent: "Not sent",
};
const WATCH_FIRST_MS = 15_000;
const WATCH_EVERY_MS = 15_000;
const WATCH_GIVE_UP_MS = 10 * 60_000;

let counter = 0;

export class LiveResults {
  /** hooks: nameOf(id, kind), announce(text, {kind, code, detail}), onEmpty(isEmpty) */
  constructor(list, hooks) {
    this.list = list;
    this.hooks = hooks;
    this.cards = new Map(); // recording_id → card
    this.orphans = new Map(); // recording_id → [[type, data]]
    this.seen = new Set(); // event ids already applied
    this.inFlight = 0;
  }

  clear() {
    for (const card of this.allCards()) clearTimeout(card.watchTimer);
    this.cards.clear();
    this.orphans.clear();
    this.seen.clear();
    this.list.replaceChildren();
    this.hooks.onEmpty(true);
  }

  allCards() {
    return [...this.list.children].map((el) => el._card).filter(Boolean);
  }

  // --- cards -----------------------------------------------------------------

  #createCard({ target = {}, durationS = null, createdAt = new Date(), origin = "here" }) {
    counter += 1;
    const card = {
      key: `local-${counter}`,
      recordingId: null,
      target,
      wantsAgent: Boolean(target.agent_id || target.pipeline),
      status: "uploading",
      answers: new Map(),
      text: "",
      watchTimer: 0,
      watchSince: 0,
      origin,
    };
    const badge = h("span", { class: "badge" });
    const progress = h("span", { class: "progress", "aria-hidden": "true" }, h("span", { class: "progress-bar" }));
    const transcript = h("p", { class: "transcript" });
    const answer = h("div", { class: "answer", hidden: true });
    const error = h("p", { class: "result-error", hidden: true });
    const retry = h("button", { type: "button", class: "btn btn-secondary btn-small retry", hidden: true, text: "Retry upload" });
    const copy = copyButton(() => card.text, "Copy text", "Copy the transcript");
    copy.hidden = true;
    const metaBits = [timeElement(createdAt)];
    if (durationS != null) metaBits.push(h("span", { class: "duration", text: `${durationS.toFixed(1)} s` }));
    const targetName = target.name || "";
    if (targetName) metaBits.push(h("span", { class: "target", text: `→ ${targetName}` }));
    if (origin !== "here") metaBits.push(h("span", { class: "origin", text: "from another device" }));
    const el = h(
      "li",
      { class: "result", dataset: { recordingId: "", status: "uploading", key: card.key } },
      h("div", { class: "result-meta" }, ...metaBits, badge),
      progress,
      transcript,
      answer,
      error,
      h("div", { class: "result-actions" }, copy, retry),
    );
    el._card = card;
    Object.assign(card, { el, badge, progress, transcript, answer, error, retry, copy, durationEl: metaBits[1] });
    this.list.prepend(el);
    this.hooks.onEmpty(false);
    return card;
  }

  #setStatus(card, status, badgeText) {
    card.status = status;
    card.el.dataset.status = status;
    card.badge.textContent = badgeText || BADGES[status] || status;
    card.badge.dataset.status = status;
    const settled = ["done", "empty", "failed", "unsent"].includes(status);
    card.progress.hidden = settled;
    if (settled) clearTimeout(card.watchTimer);
  }

  #register(card, recordingId) {
    card.recordingId = recordingId;
    card.el.dataset.recordingId = recordingId;
    this.cards.set(recordingId, card);
  }

  // --- the upload's side -----------------------------------------------------

  /** A released clip: a card in "uploading". target: {agent_id?, pipeline?, name?} */
  addClip({ durationMs, target }) {
    const card = this.#createCard({ target, durationS: durationMs / 1000 });
    this.#setStatus(card, "uploading");
    return card;
  }

  uploadStarted(card) {
    this.inFlight += 1;
    card.error.hidden = true;
    card.retry.hidden = true;
    this.#setStatus(card, "uploading");
    this.uploadProgress(card, 0);
  }

  uploadProgress(card, fraction) {
    card.progress.style.setProperty("--progress", String(Math.max(0.04, fraction)));
    if (card.status === "uploading") {
      card.badge.textContent = fraction > 0 && fraction < 1 ? `Uploading ${Math.round(fraction * 100)}%` : BADGES.uploading;
    }
  }

  uploadSucceeded(card, { recording_id: recordingId, duration_s: durationS }) {
    this.inFlight = Math.max(0, this.inFlight - 1);
    this.#register(card, recordingId);
    if (durationS != null && card.durationEl) card.durationEl.textContent = `${Number(durationS).toFixed(1)} s`;
    if (card.status === "uploading") this.#setStatus(card, "transcribing");
    card.progress.classList.add("indeterminate");
    const held = this.orphans.get(recordingId) || [];
    this.orphans.delete(recordingId);
    for (const [type, data] of held) this.#apply(card, type, data);
    this.#watch(card);
    this.#flushOrphans();
  }

  /** text: what to tell the person; retry: () => void or null; retryAt: ms timestamp */
  uploadFailed(card, { text, retry = null, retryAt = null }) {
    this.inFlight = Math.max(0, this.inFlight - 1);
    this.#setStatus(card, "unsent");
    card.error.hidden = false;
    card.error.textContent = text;
    card.retry.hidden = !retry;
    card.retry.onclick = retry;
    clearInterval(card.retryCountdown);
    if (retry && retryAt) {
      const update = () => {
        const left = Math.ceil((retryAt - Date.now()) / 1000);
        card.retry.disabled = left > 0;
        card.retry.textContent = left > 0 ? `Retry in ${left} s` : "Retry upload";
        if (left <= 0) clearInterval(card.retryCountdown);
      };
      update();
      card.retryCountdown = setInterval(update, 1000);
    } else {
      card.retry.disabled = false;
      card.retry.textContent = "Retry upload";
    }
    this.#flushOrphans();
  }

  /** The clip could not even be sent (gone): drop the card. */
  discard(card) {
    clearInterval(card.retryCountdown);
    card.el.remove();
    this.hooks.onEmpty(this.list.children.length === 0);
  }

  // --- the event side ------------------------------------------------------------

  /** Apply a live event; returns true if it was new. */
  handle(type, data) {
    if (!data || !data.recording_id) return false;
    if (data.event_id) {
      if (this.seen.has(data.event_id)) return false;
      this.seen.add(data.event_id);
    }
    const card = this.cards.get(data.recording_id);
    if (card) {
      this.#apply(card, type, data);
      return true;
    }
    if (this.inFlight > 0) {
      // Maybe the answer to an upload still on its way back: hold it.
      const held = this.orphans.get(data.recording_id) || [];
      held.push([type, data]);
      this.orphans.set(data.recording_id, held);
      return true;
    }
    this.#adopt(data.recording_id, [[type, data]]);
    return true;
  }

  #flushOrphans() {
    if (this.inFlight > 0) return;
    for (const [recordingId, held] of this.orphans) this.#adopt(recordingId, held);
    this.orphans.clear();
  }

  /** A recording made elsewhere (CLI, another tab): give it a card too. */
  #adopt(recordingId, events) {
    const first = events[0][1];
    const target = {
      agent_id: first.agent_id || undefined,
      pipeline: first.pipeline || undefined,
    };
    target.name = target.pipeline
      ? this.hooks.nameOf(target.pipeline, "pipeline")
      : target.agent_id ? this.hooks.nameOf(target.agent_id, "agent") : "";
    const card = this.#createCard({
      target,
      durationS: first.duration_s ?? first.audio_duration_s ?? null,
      createdAt: first.created_at ? new Date(first.created_at) : new Date(),
      origin: "elsewhere",
    });
    this.#register(card, recordingId);
    this.#setStatus(card, "transcribing");
    card.progress.classList.add("indeterminate");
    for (const [type, data] of events) this.#apply(card, type, data);
    this.#watch(card);
  }

  #agentName(card) {
    const t = card.target;
    return t.name || (t.pipeline ? this.hooks.nameOf(t.pipeline, "pipeline") : this.hooks.nameOf(t.agent_id, "agent")) || "The agent";
  }

  #apply(card, type, data) {
    switch (type) {
      case "recording.completed":
        if (data.agent_id || data.pipeline) {
          card.wantsAgent = true;
          card.target = { ...card.target, agent_id: data.agent_id || undefined, pipeline: data.pipeline || undefined };
        }
        if (card.status === "uploading") this.#setStatus(card, "transcribing");
        break;
      case "transcript.ready":
        if (data.agent_id || data.pipeline) card.wantsAgent = true;
        this.#showTranscript(card, data.is_empty ? "" : data.text || "");
        break;
      case "transcription.failed":
        this.#fail(card, transcriptionFailureText(data.code, data.message), data.code);
        break;
      case "agent.responded":
      case "agent.failed": {
        const answer = answerFromEvent(type, data);
        card.answers.set(answer.event_id || `${type}-${card.answers.size}`, answer);
        if (card.status !== "empty" && card.status !== "failed") this.#setStatus(card, "done");
        this.#showAnswers(card);
        const name = answer.pipeline
          ? this.hooks.nameOf(answer.pipeline, "pipeline")
          : this.hooks.nameOf(answer.agent_id, "agent") || this.#agentName(card);
        if (type === "agent.responded") this.hooks.announce(`Answer from ${name}.`, { detail: shorten(answer.output) });
        else this.hooks.announce(agentFailureText(data.code, data.message, name), { kind: "error", code: data.code });
        break;
      }
      default:
        break;
    }
  }

  #showTranscript(card, text) {
    const again = card.shown && card.text === text;
    card.shown = true;
    card.text = text;
    card.transcript.textContent = text;
    card.copy.hidden = !text;
    if (!text) {
      card.transcript.dataset.empty = "true";
      this.#setStatus(card, "empty");
      card.error.hidden = false;
      card.error.dataset.kind = "hint";
      card.error.textContent = "No speech was heard. Hold the button while you talk, close to the microphone.";
      if (!again) this.hooks.announce("No speech was heard in that clip.");
      return;
    }
    delete card.transcript.dataset.empty;
    const waiting = card.wantsAgent && card.answers.size === 0;
    this.#setStatus(card, waiting ? "thinking" : "done", waiting ? `Asking ${this.#agentName(card)}…` : undefined);
    this.#showAnswers(card);
    if (!again) this.hooks.announce(waiting ? `Transcript ready; asking ${this.#agentName(card)}…` : "Transcript ready.", { detail: shorten(text) });
  }

  #showAnswers(card) {
    const waitingFor = card.wantsAgent && card.status === "thinking" ? this.#agentName(card) : null;
    renderAnswers(card.answer, card.answers.values(), this.hooks.nameOf, waitingFor);
    if (card.status === "done" && card.answer.dataset.state === "failed") {
      card.badge.textContent = "No answer";
      card.badge.dataset.status = "failed";
    }
  }

  #fail(card, text, code = "transcription_failed") {
    const again = card.status === "failed" && card.error.textContent === text;
    this.#setStatus(card, "failed");
    card.error.hidden = false;
    delete card.error.dataset.kind;
    card.error.textContent = text;
    if (!again) this.hooks.announce(text, { kind: "error", code });
  }

  // --- the watchdog ----------------------------------------------------------------

  #watch(card) {
    clearTimeout(card.watchTimer);
    if (!card.watchSince) card.watchSince = Date.now();
    card.watchTimer = setTimeout(() => this.#poll(card), WATCH_FIRST_MS);
  }

  async #poll(card) {
    if (!card.recordingId || !this.cards.has(card.recordingId)) return;
    if (!["transcribing", "thinking"].includes(card.status)) return;
    try {
      const transcript = await request(`api/transcripts/${encodeURIComponent(card.recordingId)}`);
      this.applyStored(transcript);
    } catch {
      // 404 (not stored yet), offline…: keep waiting.
    }
    if (!["transcribing", "thinking"].includes(card.status)) return;
    if (Date.now() - card.watchSince > WATCH_GIVE_UP_MS) {
      card.badge.textContent = "Still waiting…";
      card.error.hidden = false;
      card.error.dataset.kind = "hint";
      card.error.textContent = "This is taking unusually long. The result will appear in History when it is ready.";
      return;
    }
    card.watchTimer = setTimeout(() => this.#poll(card), WATCH_EVERY_MS);
  }

  /** After the stream was closed and reopened: re-check every card still waiting. */
  resync() {
    for (const card of this.cards.values()) {
      if (["transcribing", "thinking"].includes(card.status)) {
        clearTimeout(card.watchTimer);
        this.#poll(card);
      }
    }
  }

  /** Apply a stored transcript (REST shape) to its card, if we show one. */
  applyStored(t) {
    const card = this.cards.get(t.recording_id);
    if (!card) return;
    if (t.agent_id || t.pipeline) card.wantsAgent = true;
    for (const answer of t.answers || []) {
      if (answer.event_id) this.seen.add(answer.event_id);
      card.answers.set(answer.event_id || `stored-${card.answers.size}`, answer);
    }
    if (t.status === "failed") this.#fail(card, transcriptionFailureText(t.error_code, t.error_message), t.error_code || undefined);
    else if (t.status === "done") {
      this.#showTranscript(card, t.text || "");
      if (card.answers.size && card.status === "thinking") this.#setStatus(card, "done");
      this.#showAnswers(card);
    }
  }

  /** The transcript was deleted from history: drop its card too. */
  remove(recordingId) {
    const card = this.cards.get(recordingId);
    if (!card) return;
    clearTimeout(card.watchTimer);
    this.cards.delete(recordingId);
    card.el.remove();
    this.hooks.onEmpty(this.list.children.length === 0);
  }
}

function shorten(text, max = 240) {
  const clean = String(text || "").replace(/\s+/g, " ").trim();
  return clean.length > max ? `${clean.slice(0, max - 1)}…` : clean;
}
