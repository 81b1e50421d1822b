// The agent answers under a transcript, drawn the same way in the live results and the
// history from a snapshot's `answers` (each {event_id, status, agent_id, pipeline, output,
// error_code, error_message, created_at}).

import { agentFailureText } from "./failures.js";
import { copyButton, h } from "./ui.js";

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
