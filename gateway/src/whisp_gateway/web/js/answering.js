// An agent's answer while it is being written: the live-only `answer.delta` pieces of one
// recording ({run_id, sequence, part, agent_id, delta}) built into the text so far, and the
// card's answer area drawing it. Pieces are never stored: the snapshot that brings the
// stored answer replaces this text (render.js draws that one).
//
// The rules are AnswerDelta's (shared/…/views.py): a piece of a new run drops the text built
// so far (the run was redelivered and starts over) and pieces of a dropped run are ignored
// from then on; within a run a sequence not above the last one appended is stale or a
// duplicate; a higher part starts a new text (a pipeline's next stage, an agent's words after
// a tool call or a handoff).

import { h } from "./ui.js";

export class AnswerText {
  constructor() {
    this.runId = null;
    this.dropped = new Set();
    this.sequence = -1;
    this.part = -1;
    this.agentId = "";
    this.text = "";
  }

  /** One `answer.delta` event; false when it changed nothing (stale, duplicate, foreign). */
  fromDelta(event) {
    const sequence = Number(event.sequence);
    const part = Number(event.part) || 0;
    const runId = String(event.run_id || "");
    if (!runId || this.dropped.has(runId) || !Number.isInteger(sequence) || typeof event.delta !== "string") {
      return false;
    }
    if (runId !== this.runId) {
      if (this.runId !== null) this.dropped.add(this.runId);
      this.runId = runId;
      this.sequence = -1;
      this.part = -1;
      this.text = "";
    }
    if (sequence <= this.sequence || part < this.part) return false;
    if (part > this.part) {
      this.part = part;
      this.text = "";
    }
    this.sequence = sequence;
    this.agentId = String(event.agent_id || "");
    this.text += event.delta;
    return true;
  }

  get empty() {
    return !this.text.trim();
  }
}

/**
 * Draw the text so far into a card's answer area (.answer): one item marked
 * data-state="streaming", headed by who is writing (`name`).
 */
export function renderAnswering(container, name, text) {
  container.replaceChildren(
    h(
      "div",
      // Busy: assistive tech waits for the stored answer, announced once (live.js).
      { class: "answer-item", dataset: { state: "streaming" }, "aria-busy": "true" },
      h("div", { class: "answer-head" }, h("span", { class: "answer-from", text: `${name || "Agent"} is writing…` })),
      h("p", { class: "answer-text", text }),
    ),
  );
  container.dataset.state = "streaming";
  delete container.dataset.waiting;
  container.hidden = false;
}
