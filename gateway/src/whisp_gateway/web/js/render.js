// Pieces of a transcript's display shared by the live results and the history: the
// agent answers, and failure texts a person can act on.

import { copyButton, h, sentence } from "./ui.js";

const AGENT_GONE = new Set(["unknown_agent", "agent_unavailable", "agent_config_error"]);

/** Text for a failed agent run; `name` is the agent or pipeline's display name. */
export function agentFailureText(code, message, name) {
  const who = name ? `“${name}”` : "The agent";
  if (AGENT_GONE.has(code)) {
    return `${name ? `The agent ${who}` : "This agent"} is unavailable right now. Pick another one under “Send to”, or try again later.`;
  }
  if (code === "upstream_rate_limited") return `${who} is busy right now (rate limited). Try again in a little while.`;
  if (code === "upstream_unavailable") return `${who} cannot reach its language model right now. Try again later.`;
  if (code === "guardrail_tripped") return message ? sentence(message) : `${who} declined to answer this.`;
  return message ? sentence(message) : `${who} could not answer.`;
}

/** Text for a transcription that failed (the event's or the stored transcript's code). */
export function transcriptionFailureText(code, message) {
  if (code === "audio_too_long") return `${sentence(message || "The recording is too long")} Record a shorter clip.`;
  if (code === "undecodable_audio") return `${sentence(message || "The audio could not be decoded")} Try recording again.`;
  return message ? sentence(message) : "The transcription failed. Try recording again.";
}

/** An Answer (REST shape) from an agent.responded / agent.failed event. */
export function answerFromEvent(type, data) {
  const base = {
    event_id: data.event_id,
    agent_id: data.agent_id || null,
    pipeline: data.pipeline || null,
    created_at: data.created_at,
  };
  return type === "agent.responded"
    ? { ...base, status: "done", output: data.output || "" }
    : { ...base, status: "failed", output: "", error_code: data.code, error_message: data.message };
}

/**
 * Fill `container` (.answer) with the answers; nameOf(id, kind) gives display names.
 * data-state: none | pending | done | failed. `waitingFor` (a name) shows a pending note.
 */
export function renderAnswers(container, answers, nameOf, waitingFor = null) {
  const list = [...answers].sort((a, b) => String(a.created_at).localeCompare(String(b.created_at)));
  container.replaceChildren(
    ...list.map((answer) => {
      const name = answer.pipeline ? nameOf(answer.pipeline, "pipeline") : nameOf(answer.agent_id, "agent");
      const failed = answer.status === "failed";
      const text = failed ? agentFailureText(answer.error_code, answer.error_message, name) : answer.output;
      return h(
        "div",
        { class: "answer-item", dataset: { state: failed ? "failed" : "done", code: answer.error_code || "" } },
        h(
          "div",
          { class: "answer-head" },
          h("span", { class: "answer-from", text: name || "Agent" }),
          failed ? null : copyButton(() => answer.output, "Copy", `Copy the answer from ${name || "the agent"}`),
        ),
        h("p", { class: "answer-text", text }),
      );
    }),
  );
  let state = "none";
  if (list.length) state = list.some((a) => a.status === "done") ? "done" : "failed";
  else if (waitingFor) state = "pending";
  container.dataset.state = state;
  if (state === "pending") container.dataset.waiting = `${waitingFor} is thinking…`;
  else delete container.dataset.waiting;
  container.hidden = state === "none";
}
