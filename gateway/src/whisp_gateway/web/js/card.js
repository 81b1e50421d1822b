// One card of "This session": its DOM, and how it draws each state. A card does not know
// where its states come from; live.js routes the upload's progress and the recording's
// snapshots to it and says out loud what changed.
//
// data-status on the card: uploading | transcribing | thinking | done | empty | failed |
// unsent; data-recording-id is "" until the upload (or the stream's commit) answers;
// data-via: upload | stream (how its audio went to the server).
//
// A streamed press's card starts with the words said so far (`showPartial`, dimmed where
// still tentative) and trades them for the stored transcript when its snapshot says done.
// Likewise an answer shows as it is written (`showAnswerDelta`, answering.js) until the
// snapshot with the stored answer replaces it. While an upload waits for a transcription
// worker its badge says where (`showQueue`: "Queued: 3 ahead, about 12 s").

import { AnswerText, renderAnswering } from "./answering.js";
import { transcriptionFailureText } from "./failures.js";
import { partialSpans, renderPartial } from "./partial.js";
import { renderAnswers } from "./render.js";
import { awaitsAnswer, isOlder, targetName } from "./snapshot.js";
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
const SETTLED = new Set(["done", "empty", "failed", "unsent"]);
const WAITING = new Set(["transcribing", "thinking"]);

let counter = 0;

/** The card's state for a snapshot: what the server decided, in the card's words. */
function cardStatus(t) {
  if (t.status === "failed") return "failed";
  if (t.status !== "done") return "transcribing";
  if (!(t.text || "").trim()) return "empty";
  return awaitsAnswer(t) ? "thinking" : "done";
}

/** "Queued: 3 ahead, about 12 s" for a QueuePosition (the server's counts, as they are). */
function queueText(q) {
  const ahead = q.ahead === 0 ? "next" : `${q.at_least ? "at least " : ""}${q.ahead} ahead`;
  if (q.eta_s != null) {
    const eta = q.eta_s < 60 ? `${Math.max(1, Math.round(q.eta_s))} s` : `${Math.round(q.eta_s / 60)} min`;
    return `Queued: ${ahead}, ${q.at_least ? "more than" : "about"} ${eta}`;
  }
  return q.workers === 0 ? `Queued: ${ahead}, waiting for a worker` : `Queued: ${ahead}`;
}

function durationText(seconds) {
  return seconds == null ? "" : `${Number(seconds).toFixed(1)} s`;
}

export class ResultCard {
  /**
   * target: {agent_id?, pipeline?, name?} (the picker's, until a snapshot says);
   * origin: "here" (this tab's clip) or "elsewhere"; nameOf(id, kind) gives display names.
   */
  constructor({ target = {}, durationS = null, createdAt = new Date(), origin = "here", via = "upload", nameOf }) {
    counter += 1;
    this.key = `local-${counter}`;
    this.recordingId = null;
    this.target = target;
    this.nameOf = nameOf;
    this.status = "uploading";
    this.shown = null; // the snapshot on display
    this.text = "";
    this.answering = null; // the answer so far (AnswerText), until the stored one is in
    this.queue = null; // where it waits for a worker (QueuePosition), while it does
    this.watchTimer = 0; // live.js's watchdog
    this.watchSince = 0;
    this.retryCountdown = 0;

    this.badge = h("span", { class: "badge" });
    this.progress = h("span", { class: "progress", "aria-hidden": "true" }, h("span", { class: "progress-bar" }));
    this.transcript = h("p", { class: "transcript" });
    // Hidden from screen readers: the status line announces the final text once.
    this.partial = h("p", { class: "partial card-partial", hidden: true, "aria-hidden": "true" }, ...partialSpans());
    this.answer = h("div", { class: "answer", hidden: true });
    this.error = h("p", { class: "result-error", hidden: true });
    this.retry = h("button", { type: "button", class: "btn btn-secondary btn-small retry", hidden: true, text: "Retry upload" });
    this.copy = copyButton(() => this.text, "Copy text", "Copy the transcript");
    this.copy.hidden = true;
    this.durationEl = h("span", { class: "duration", hidden: durationS == null, text: durationText(durationS) });
    this.targetEl = h("span", { class: "target", hidden: !target.name, text: target.name ? `→ ${target.name}` : "" });
    const meta = [timeElement(createdAt), this.durationEl, this.targetEl];
    if (origin !== "here") meta.push(h("span", { class: "origin", text: "from another device" }));
    this.el = h(
      "li",
      { class: "result", dataset: { recordingId: "", status: "uploading", key: this.key, via } },
      h("div", { class: "result-meta" }, ...meta, this.badge),
      this.progress,
      this.partial,
      this.transcript,
      this.answer,
      this.error,
      h("div", { class: "result-actions" }, this.copy, this.retry),
    );
    this.el._card = this;
    this.setStatus("uploading");
  }

  get waiting() {
    return WAITING.has(this.status);
  }

  setStatus(status, badgeText) {
    this.status = status;
    this.el.dataset.status = status;
    this.badge.textContent = badgeText || BADGES[status] || status;
    this.badge.dataset.status = status;
    const settled = SETTLED.has(status);
    this.progress.hidden = settled;
    if (settled) clearTimeout(this.watchTimer);
  }

  setVia(via) {
    this.el.dataset.via = via;
    this.hidePartial();
  }

  setRecordingId(recordingId) {
    this.recordingId = recordingId;
    this.el.dataset.recordingId = recordingId;
  }

  setDuration(durationS) {
    if (durationS == null) return;
    this.durationEl.hidden = false;
    this.durationEl.textContent = durationText(durationS);
  }

  /** Sent: the server has it, and its snapshots will follow. */
  awaitResult() {
    if (this.status === "uploading") this.setStatus("transcribing");
    this.progress.classList.add("indeterminate");
  }

  agentName() {
    const t = this.target;
    return t.name || (t.pipeline ? this.nameOf(t.pipeline, "pipeline") : this.nameOf(t.agent_id, "agent")) || "The agent";
  }

  // --- a streamed press ------------------------------------------------------

  /** Released while streaming: the server has (nearly) all of it, the text is on its way. */
  finishing() {
    this.setStatus("transcribing", "Finishing…");
    this.progress.classList.add("indeterminate");
  }

  /** The words so far ({settled, tentative}), until the transcript itself is in. */
  showPartial(parts) {
    if (this.status !== "transcribing" || this.el.dataset.via !== "stream") return;
    renderPartial(this.partial, parts);
    this.partial.hidden = false;
    this.el.dataset.live = "true";
  }

  hidePartial() {
    this.partial.hidden = true;
    delete this.el.dataset.live;
  }

  // --- waiting for a worker --------------------------------------------------

  /** Its place in the queue (null: a worker has it); shown while it is transcribing. */
  showQueue(queue) {
    this.queue = queue;
    if (this.status === "transcribing" && this.el.dataset.via !== "stream") {
      this.badge.textContent = queue ? queueText(queue) : BADGES.transcribing;
    }
  }

  // --- an answer as it is written ---------------------------------------------

  /** An `answer.delta` of this card's recording; kept until the card is settled, drawn
   * while it waits for the answer (one may come before the transcript's own snapshot). */
  showAnswerDelta(event) {
    if (SETTLED.has(this.status)) return false;
    if (!this.answering) this.answering = new AnswerText();
    if (!this.answering.fromDelta(event)) return false;
    if (this.status === "thinking") this.#drawAnswering();
    return true;
  }

  #drawAnswering() {
    const { agentId, text } = this.answering;
    renderAnswering(this.answer, this.nameOf(agentId, "agent") || this.agentName(), text);
  }

  // --- the upload ------------------------------------------------------------

  uploadStarted() {
    this.error.hidden = true;
    this.retry.hidden = true;
    this.setStatus("uploading");
    this.uploadProgress(0);
  }

  uploadProgress(fraction) {
    this.progress.style.setProperty("--progress", String(Math.max(0.04, fraction)));
    if (this.status === "uploading") {
      this.badge.textContent = fraction > 0 && fraction < 1 ? `Uploading ${Math.round(fraction * 100)}%` : BADGES.uploading;
    }
  }

  /** text: what to tell the person; retry: () => void or null; retryAt: ms timestamp */
  unsent({ text, retry = null, retryAt = null }) {
    this.setStatus("unsent");
    this.error.hidden = false;
    delete this.error.dataset.kind;
    this.error.textContent = text;
    this.retry.hidden = !retry;
    this.retry.onclick = retry;
    clearInterval(this.retryCountdown);
    if (retry && retryAt) {
      const update = () => {
        const left = Math.ceil((retryAt - Date.now()) / 1000);
        this.retry.disabled = left > 0;
        this.retry.textContent = left > 0 ? `Retry in ${left} s` : "Retry upload";
        if (left <= 0) clearInterval(this.retryCountdown);
      };
      update();
      this.retryCountdown = setInterval(update, 1000);
    } else {
      this.retry.disabled = false;
      this.retry.textContent = "Retry upload";
    }
  }

  // --- the recording's snapshots -----------------------------------------------

  /** Draw `t`; false (and nothing drawn) when it is older than what the card shows. */
  showSnapshot(t) {
    if (isOlder(t, this.shown)) return false;
    this.shown = t;
    this.setDuration(t.duration_s);
    const name = targetName(t, this.nameOf);
    if (name) {
      this.target = { agent_id: t.agent_id || undefined, pipeline: t.pipeline || undefined, name };
      this.targetEl.hidden = false;
      this.targetEl.textContent = `→ ${name}`;
    }

    const status = cardStatus(t);
    if (status !== "transcribing") this.hidePartial(); // replaced by the card's own text
    this.text = status === "failed" ? "" : t.text || "";
    this.transcript.textContent = this.text;
    this.copy.hidden = !this.text;
    if (status === "empty") this.transcript.dataset.empty = "true";
    else delete this.transcript.dataset.empty;
    if (status !== "transcribing") this.queue = null;
    const badge =
      status === "thinking" ? `Asking ${this.agentName()}…`
      : status === "transcribing" && this.el.dataset.via === "stream" ? "Finishing…"
      : status === "transcribing" && this.queue ? queueText(this.queue)
      : undefined;
    this.setStatus(status, badge);

    this.error.hidden = status !== "failed" && status !== "empty";
    if (status === "failed") {
      delete this.error.dataset.kind;
      this.error.textContent = transcriptionFailureText(t.error_code, t.error_message);
    } else if (status === "empty") {
      this.error.dataset.kind = "hint";
      this.error.textContent = "No speech was heard. Hold the button while you talk, close to the microphone.";
    }

    renderAnswers(this.answer, t.answers || [], this.nameOf, status === "thinking" ? this.agentName() : null);
    if (status !== "thinking") this.answering = null; // the stored answer (or failure) is in
    else if (this.answering && !this.answering.empty) this.#drawAnswering();
    if (status === "done" && this.answer.dataset.state === "failed") {
      this.badge.textContent = "No answer";
      this.badge.dataset.status = "failed";
    }
    return true;
  }

  /** The watchdog gave up asking: say where the result will turn up. */
  stillWaiting() {
    this.badge.textContent = "Still waiting…";
    this.error.hidden = false;
    this.error.dataset.kind = "hint";
    this.error.textContent = "This is taking unusually long. The result will appear in History when it is ready.";
  }

  /** Stop its timers and take it off the page. */
  remove() {
    clearTimeout(this.watchTimer);
    clearInterval(this.retryCountdown);
    this.el.remove();
  }
}
