// "Everything of mine" in the settings dialog: the export link (GET api/me/export, a JSON
// Lines download) and the delete button (DELETE api/me/data?confirm=NAME).
//
// Deleting is irreversible, so it takes a second step: the person types their user name and
// the button stays disabled until it matches exactly, as the server checks it. The answer
// says what each store removed (gateway `DataDeleted`); the page says it in words.

import { request } from "./api.js";
import { $, sentence } from "./ui.js";

const plural = (n, one, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

function megabytes(bytes) {
  if (bytes < 1024 * 1024) return `${Math.max(1, Math.round(bytes / 1024))} KB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}

/** A DataDeleted answer as one sentence. */
export function describeDeleted(deleted) {
  const audio = deleted.audio || {};
  const gateway = deleted.gateway || {};
  const agents = deleted.agents || {};
  const parts = [];
  if (gateway.transcripts) parts.push(plural(gateway.transcripts, "transcript"));
  if (audio.deleted) parts.push(`${plural(audio.deleted, "recording")} (${megabytes(audio.freed_bytes || 0)} of audio)`);
  if (gateway.answers) parts.push(plural(gateway.answers, "agent answer"));
  if (gateway.settings) parts.push("your settings");
  if (agents.sessions) parts.push(plural(agents.sessions, "agent session"));
  if (agents.notes) parts.push(plural(agents.notes, "note"));
  if (agents.usage_rows) parts.push(plural(agents.usage_rows, "usage record"));
  if (!parts.length) return "There was nothing of yours left to delete.";
  const list = parts.length > 1 ? `${parts.slice(0, -1).join(", ")} and ${parts.at(-1)}` : parts[0];
  return `Deleted ${list}. Nothing of yours is left.`;
}

export class MyData {
  /** root: the dialog; userName(): who is signed in; onDeleted(answer): the page empties. */
  constructor(root, { userName, onDeleted }) {
    this.els = {
      start: $("#delete-mine-start", root),
      confirm: $("#delete-confirm", root),
      name: $("#delete-name", root),
      hint: $("#delete-name-hint", root),
      go: $("#delete-mine", root),
      cancel: $("#delete-cancel", root),
      status: $("#my-data-status", root),
    };
    this.userName = userName;
    this.onDeleted = onDeleted;
    const { start, name, go, cancel } = this.els;
    start.addEventListener("click", () => this.#ask());
    cancel.addEventListener("click", () => this.reset({ focus: true }));
    name.addEventListener("input", () => this.#check());
    name.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !go.disabled) go.click();
    });
    go.addEventListener("click", () => this.#delete());
  }

  /** Back to the first step (the dialog closed, or Cancel). */
  reset({ focus = false, keepStatus = false } = {}) {
    const { start, confirm, name, status } = this.els;
    confirm.hidden = true;
    start.setAttribute("aria-expanded", "false");
    name.value = "";
    this.#check();
    if (!keepStatus) status.textContent = "";
    if (focus) start.focus();
  }

  #ask() {
    const { start, confirm, name, hint, status } = this.els;
    hint.textContent = this.userName();
    status.textContent = "";
    confirm.hidden = false;
    start.setAttribute("aria-expanded", "true");
    this.#check();
    name.focus();
  }

  #check() {
    this.els.go.disabled = !this.userName() || this.els.name.value !== this.userName();
  }

  async #delete() {
    const { go, status } = this.els;
    const name = this.userName();
    go.disabled = true;
    go.textContent = "Deleting…";
    status.textContent = "Deleting everything of yours…";
    let answer;
    try {
      answer = await request(`api/me/data?${new URLSearchParams({ confirm: name })}`, { method: "DELETE" });
    } catch (error) {
      status.textContent =
        error.status === 0
          ? "The server cannot be reached: nothing more was deleted. Try again when it is back."
          : `The deletion did not finish: ${sentence(error.message, false)} Try again: it picks up where it stopped.`;
      go.textContent = "Delete everything for good";
      this.#check();
      return;
    }
    go.textContent = "Delete everything for good";
    const text = describeDeleted(answer || {});
    this.reset({ keepStatus: true, focus: true });
    status.textContent = text;
    this.onDeleted(answer, text);
  }
}
