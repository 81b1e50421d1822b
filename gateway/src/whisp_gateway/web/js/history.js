// History: the person's stored transcripts (GET /api/transcripts), newest first, with a
// debounced search, date and agent filters, "Load more" paging, copy, delete, and exports
// that follow the same filters. Snapshots from the live stream keep it current:
// - an item on screen simply takes the newer snapshot;
// - without filters, a recording not on screen is put where the server's order puts it
//   (if that is within the pages loaded so far);
// - with filters, only the server knows whether a recording matches (its search is not the
//   page's to copy), so the page does not guess: it offers "Show new results", a re-query
//   the person starts. An automatic re-query would reset "Load more" paging and move items
//   (and a half-confirmed Delete) under the pointer at every snapshot of every clip.

import { request } from "./api.js";
import { renderAnswers } from "./render.js";
import { transcriptionFailureText } from "./failures.js";
import { awaitsAnswer, comesBefore, isOlder, targetName } from "./snapshot.js";
import { copyButton, h, timeElement } from "./ui.js";

const PAGE_SIZE = 20;
const SEARCH_DELAY_MS = 300;
const CONFIRM_MS = 4000;
const PENDING_FOR_MS = 10 * 60_000;
const FORMATS = ["jsonl", "csv", "txt", "srt", "vtt"];
const STATUS_LABELS = { processing: "Processing", done: "Done", failed: "Failed" };

/** "2026-11-03" (a local calendar day) → that day's local midnight as a Date. */
function localDay(value, plusDays = 0) {
  const [y, m, d] = value.split("-").map(Number);
  if (!y || !m || !d) return null;
  return new Date(y, m - 1, d + plusDays);
}

export class History {
  constructor(els, hooks) {
    this.els = els; // list, status, stale, staleText, staleShow, loadMore, refresh, form, search, from, to, agent, filterError, exports
    this.hooks = hooks; // nameOf(id, kind), announce(text, kind), onDeleted(id)
    this.items = new Map(); // recording_id → {data, el}
    this.cursor = null;
    this.seq = 0;
    this.controller = null;
    this.searchTimer = 0;
    this.lastFilters = null; // the filters of the list on screen (null: never loaded)

    els.search.addEventListener("input", () => {
      clearTimeout(this.searchTimer);
      this.searchTimer = setTimeout(() => this.reload(), SEARCH_DELAY_MS);
    });
    els.search.addEventListener("keydown", (event) => {
      if (event.key === "Enter") {
        event.preventDefault();
        clearTimeout(this.searchTimer);
        this.reload();
      }
    });
    for (const input of [els.from, els.to, els.agent]) input.addEventListener("change", () => this.reload());
    els.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.reload();
    });
    els.form.addEventListener("reset", () => {
      // Let the form clear its fields first.
      setTimeout(() => this.reload(), 0);
    });
    els.loadMore.addEventListener("click", () => this.load({ append: Boolean(this.cursor) }));
    els.refresh.addEventListener("click", () => this.reload());
    els.staleShow.addEventListener("click", () => this.reload());
    this.#updateExports(this.filters() || {});
  }

  /** The current filters as API parameters, or null when the dates contradict. */
  filters() {
    const { search, from, to, agent, filterError } = this.els;
    const out = {};
    const q = search.value.trim();
    if (q) out.q = q;
    if (agent.value) out.agent_id = agent.value;
    const since = from.value ? localDay(from.value) : null;
    const until = to.value ? localDay(to.value, 1) : null; // "to" includes that whole day
    if (since && until && since >= until) {
      filterError.textContent = "“From” must be on or before “To”.";
      from.setAttribute("aria-invalid", "true");
      to.setAttribute("aria-invalid", "true");
      return null;
    }
    filterError.textContent = "";
    from.removeAttribute("aria-invalid");
    to.removeAttribute("aria-invalid");
    if (since) out.since = since.toISOString();
    if (until) out.until = until.toISOString();
    return out;
  }

  #updateExports(filters) {
    for (const format of FORMATS) {
      const link = this.els.exports[format];
      if (!link) continue;
      const params = new URLSearchParams({ format, ...filters });
      link.href = `api/transcripts/export?${params}`;
      link.setAttribute("download", `whisptt-transcripts.${format}`);
    }
  }

  clear() {
    if (this.controller) this.controller.abort();
    this.items.clear();
    this.cursor = null;
    this.els.list.replaceChildren();
    this.els.loadMore.hidden = true;
    this.els.status.textContent = "";
    this.els.stale.hidden = true;
    this.lastFilters = null;
  }

  reload() {
    return this.load({ append: false });
  }

  async load({ append }) {
    const filters = this.filters();
    if (!filters) return;
    this.lastFilters = filters;
    this.#updateExports(filters);
    if (this.controller) this.controller.abort();
    const controller = new AbortController();
    this.controller = controller;
    const seq = ++this.seq;
    const params = new URLSearchParams({ ...filters, limit: String(PAGE_SIZE) });
    if (append && this.cursor) params.set("cursor", this.cursor);
    const { list, status, loadMore } = this.els;
    list.setAttribute("aria-busy", "true");
    loadMore.disabled = true;
    if (append) loadMore.textContent = "Loading…";
    else status.textContent = "Loading…";
    let page;
    try {
      page = await request(`api/transcripts?${params}`, { signal: controller.signal });
    } catch (error) {
      if (error.name === "AbortError" || seq !== this.seq) return;
      list.setAttribute("aria-busy", "false");
      loadMore.disabled = false;
      loadMore.hidden = false;
      loadMore.textContent = "Try again";
      status.textContent =
        error.status === 0
          ? "History could not be loaded: the server cannot be reached."
          : `History could not be loaded: ${error.message}`;
      return;
    }
    if (seq !== this.seq) return;
    list.setAttribute("aria-busy", "false");
    if (!append) {
      this.items.clear();
      list.replaceChildren();
      this.els.stale.hidden = true; // this answer is the server's word on what matches
    }
    for (const transcript of page.items || []) {
      if (this.items.has(transcript.recording_id)) continue;
      const el = this.#render(transcript);
      this.items.set(transcript.recording_id, { data: transcript, el });
      list.append(el);
    }
    this.cursor = page.next_cursor || null;
    loadMore.disabled = false;
    loadMore.hidden = !this.cursor;
    loadMore.textContent = "Load more";
    this.#describe();
  }

  #describe() {
    const count = this.items.size;
    const filtered = this.lastFilters && Object.keys(this.lastFilters).length > 0;
    if (count === 0) {
      this.els.status.textContent = filtered
        ? "Nothing matches these filters."
        : "No transcripts yet. Hold the button and say something.";
    } else {
      const more = this.cursor ? " (more below)" : "";
      this.els.status.textContent = `${count} transcript${count === 1 ? "" : "s"}${filtered ? " match" : ""}${more}.`;
    }
  }

  // --- rendering --------------------------------------------------------------

  #render(t) {
    const el = h("li", { class: "item", dataset: { recordingId: t.recording_id } });
    el.append(...this.#content(t, el));
    return el;
  }

  #content(t, el) {
    el.dataset.status = t.status;
    const { nameOf } = this.hooks;
    const meta = [timeElement(t.created_at)];
    if (t.duration_s != null) meta.push(h("span", { class: "duration", text: `${Number(t.duration_s).toFixed(1)} s` }));
    const target = targetName(t, nameOf);
    if (target) meta.push(h("span", { class: "target", text: `→ ${target}` }));
    meta.push(h("span", { class: "badge", dataset: { status: t.status }, text: STATUS_LABELS[t.status] || t.status }));

    const transcript = h("p", { class: "transcript", text: t.text || "" });
    if (t.status === "done" && !t.text) transcript.dataset.empty = "true";
    const parts = [h("div", { class: "item-meta" }, ...meta), transcript];
    if (t.status === "failed") {
      parts.push(h("p", { class: "result-error", text: transcriptionFailureText(t.error_code, t.error_message) }));
    }
    const answer = h("div", { class: "answer" });
    // "…is thinking" only for a recent clip: an old one without answer just shows none.
    const recent = Date.now() - new Date(t.updated_at || t.created_at).getTime() < PENDING_FOR_MS;
    const waiting = awaitsAnswer(t) && recent ? target : null;
    renderAnswers(answer, t.answers || [], nameOf, waiting);
    parts.push(answer);

    const actions = h("div", { class: "item-actions" });
    if (t.text) actions.append(copyButton(() => t.text, "Copy text", "Copy the transcript"));
    actions.append(this.#deleteButton(t.recording_id));
    parts.push(actions);
    return parts;
  }

  #deleteButton(recordingId) {
    const button = h("button", {
      type: "button",
      class: "btn btn-quiet btn-small delete",
      "aria-label": "Delete this transcript",
      text: "Delete",
    });
    let armed = 0;
    const disarm = () => {
      clearTimeout(armed);
      armed = 0;
      button.textContent = "Delete";
      button.setAttribute("aria-label", "Delete this transcript");
      button.classList.remove("btn-danger");
    };
    button.addEventListener("click", async () => {
      if (!armed) {
        button.textContent = "Confirm delete";
        button.setAttribute("aria-label", "Confirm: delete this transcript for good");
        button.classList.add("btn-danger");
        armed = setTimeout(disarm, CONFIRM_MS);
        return;
      }
      disarm();
      button.disabled = true;
      button.textContent = "Deleting…";
      try {
        await request(`api/transcripts/${encodeURIComponent(recordingId)}`, { method: "DELETE" });
      } catch (error) {
        if (error.status !== 404) {
          button.disabled = false;
          button.textContent = "Delete";
          this.hooks.announce(`Could not delete: ${error.status === 0 ? "the server cannot be reached" : error.message}`, "error");
          return;
        }
      }
      this.#removeItem(recordingId, { moveFocus: true });
      this.hooks.announce("Transcript deleted.");
      this.hooks.onDeleted(recordingId);
    });
    return button;
  }

  #removeItem(recordingId, { moveFocus = false } = {}) {
    const entry = this.items.get(recordingId);
    if (!entry) return;
    const next = entry.el.nextElementSibling || entry.el.previousElementSibling;
    entry.el.remove();
    this.items.delete(recordingId);
    this.#describe();
    if (moveFocus) {
      const target = next && next.querySelector("button");
      (target || this.els.search).focus({ preventScroll: false });
    }
  }

  /** Keep the list current from a snapshot (the live stream's, or a card's watchdog's). */
  apply(t) {
    const entry = this.items.get(t.recording_id);
    if (entry) {
      if (isOlder(t, entry.data)) return;
      entry.data = t;
      entry.el.replaceChildren(...this.#content(t, entry.el));
      this.#place(entry.el, t); // `created_at` can still move once (the recording's own time wins)
      return;
    }
    const shown = this.lastFilters;
    if (!shown) return; // never loaded: nothing on screen to keep current
    if (Object.keys(shown).length > 0) {
      this.#offerRefresh("New results may match your filters.");
      return;
    }
    const last = [...this.items.values()].at(-1);
    if (this.cursor && last && !comesBefore(t, last.data)) return; // "Load more" brings it
    const el = this.#render(t);
    this.items.set(t.recording_id, { data: t, el });
    this.#place(el, t);
    this.#describe();
  }

  /** Put `el` where the server's order puts `t` among the items on screen. */
  #place(el, t) {
    const { list } = this.els;
    const next = [...list.children].find((other) => {
      if (other === el) return false;
      const entry = this.items.get(other.dataset.recordingId);
      return entry && comesBefore(t, entry.data);
    });
    if (next) {
      if (el.nextElementSibling !== next) list.insertBefore(el, next);
    } else if (list.lastElementChild !== el) list.append(el);
  }

  #offerRefresh(text) {
    const { stale, staleText } = this.els;
    if (!stale.hidden && staleText.textContent === text) return; // said once is enough
    staleText.textContent = text;
    stale.hidden = false;
  }

  /** The live stream was reopened and could not resume: what is on screen may be behind. */
  resync() {
    if (this.lastFilters) this.#offerRefresh("Your history may have changed while the connection was down.");
  }

  /** Draw every item again (agent names became known). */
  rerender() {
    for (const entry of this.items.values()) entry.el.replaceChildren(...this.#content(entry.data, entry.el));
  }

  /** Deleted elsewhere on the page. */
  forget(recordingId) {
    this.#removeItem(recordingId);
  }
}
