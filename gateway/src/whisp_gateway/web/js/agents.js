// The "Send to" dropdown: agents and pipelines from GET /api/agents, remembered per browser.
//
// Which one is preselected: the person's `default_agent` (their settings) unless they picked
// another one in this browser after that default was set; with no default, the last pick.
// A pick is stored with the default it was made against, so a default changed later (here
// or from the CLI) wins over an older pick, and a newer pick wins over the default.
//
// Expected answer: a list of {id, name, description?, kind: "agent" | "pipeline",
// available?: bool, problem?: string} (unavailable ones are shown, disabled). Also
// accepted: {items: [...]} or the agent service's {agents: [...], pipelines: [...]}.
// If the route is missing or fails, only "No agent" is offered, with a note.

import { request } from "./api.js";
import { h } from "./ui.js";

const STORAGE_KEY = "whisptt.target";
const AGAINST_KEY = "whisptt.target.default"; // the default_agent in force when that was picked

function normalize(body) {
  const out = [];
  const add = (item, kind) => {
    if (!item || typeof item.id !== "string" || !item.id) return;
    out.push({
      id: item.id,
      name: typeof item.name === "string" && item.name ? item.name : item.id,
      description: typeof item.description === "string" ? item.description : "",
      kind: item.kind === "pipeline" || kind === "pipeline" ? "pipeline" : "agent",
      available: item.available !== false,
      problem: typeof item.problem === "string" ? item.problem : "",
    });
  };
  if (Array.isArray(body)) body.forEach((item) => add(item, item && item.kind));
  else if (body && Array.isArray(body.items)) body.items.forEach((item) => add(item, item && item.kind));
  else if (body && (Array.isArray(body.agents) || Array.isArray(body.pipelines))) {
    (body.agents || []).forEach((item) => add(item, "agent"));
    (body.pipelines || []).forEach((item) => add(item, "pipeline"));
  } else {
    throw new Error("unexpected answer from /api/agents");
  }
  return out;
}

/** {key, against}: the stored pick ("kind:id", "" for no agent; null when none). */
function readStored() {
  try {
    return { key: localStorage.getItem(STORAGE_KEY), against: localStorage.getItem(AGAINST_KEY) || "" };
  } catch {
    return { key: null, against: "" };
  }
}

function store(key, against) {
  try {
    localStorage.setItem(STORAGE_KEY, key);
    localStorage.setItem(AGAINST_KEY, against || "");
  } catch {
    // Private mode or storage disabled: the choice just is not remembered.
  }
}

function option(item, value) {
  return h("option", {
    value,
    text: item.available ? item.name : `${item.name} (unavailable)`,
    title: (item.available ? item.description : item.problem || item.description) || null,
    disabled: !item.available,
  });
}

export class AgentPicker {
  /** select: the dropdown; note: the line under it; retry: a "Reload agents" button. */
  constructor({ select, note, retry, filter, onChange }) {
    this.select = select;
    this.note = note;
    this.retry = retry;
    this.filter = filter; // the history's agent filter, filled from the same list
    this.onChange = onChange || (() => {});
    this.items = [];
    this.byKey = new Map();
    this.available = false;
    this.loaded = false;
    this.defaultName = null; // the person's default_agent, once their settings are known
    select.addEventListener("change", () => {
      store(select.value, this.defaultName);
      this.#describe();
      this.onChange(this.current());
    });
    retry.addEventListener("click", () => this.load());
  }

  async load() {
    this.retry.hidden = true;
    this.note.dataset.kind = "info";
    this.note.textContent = "Loading agents…";
    let items = [];
    let problem = null;
    try {
      items = normalize(await request("api/agents"));
    } catch (error) {
      problem = error;
    }
    this.items = items;
    this.byKey = new Map(items.map((item) => [`${item.kind}:${item.id}`, item]));
    this.available = !problem;
    this.loaded = true;
    this.#fill();
    if (problem) {
      this.note.dataset.kind = "warn";
      this.note.textContent =
        problem.status === 404
          ? "Agents are not available on this server yet: your words are transcribed only."
          : problem.status === 0
            ? "The agent list could not be loaded (server unreachable): transcripts only for now."
            : `The agent list could not be loaded (${problem.message}): transcripts only for now.`;
      this.retry.hidden = problem.status === 404;
    } else {
      this.#describe();
      if (this.unavailableChoice) {
        const item = this.unavailableChoice;
        this.note.dataset.kind = "warn";
        this.note.textContent = `Your last choice, “${item.name}”, is unavailable right now${item.problem ? ` (${item.problem})` : ""}: pick another one, or go on without an agent.`;
      }
    }
    return this.items;
  }

  /** The option nodes of a dropdown of this list; `valueOf(item)` is each one's value. */
  #options(valueOf) {
    const agents = this.items.filter((i) => i.kind === "agent");
    const pipelines = this.items.filter((i) => i.kind === "pipeline");
    const groups = [h("option", { value: "", text: "No agent (transcript only)" })];
    const each = (item) => option(item, valueOf(item));
    if (agents.length) groups.push(h("optgroup", { label: "Agents" }, agents.map(each)));
    if (pipelines.length) groups.push(h("optgroup", { label: "Pipelines" }, pipelines.map(each)));
    return groups;
  }

  /** The picker's key for a default_agent name (an agent first, as the gateway routes it). */
  #keyOf(name) {
    return ["agent", "pipeline"].map((kind) => `${kind}:${name}`).find((key) => this.byKey.has(key)) || null;
  }

  /** What to preselect: see the header. */
  #wanted() {
    const { key, against } = readStored();
    const name = this.defaultName;
    if (!name || (key !== null && against === name)) return key || "";
    return this.#keyOf(name) || key || "";
  }

  #choose() {
    const wanted = this.#wanted();
    const remembered = this.byKey.get(wanted);
    this.select.value = remembered && remembered.available ? wanted : "";
    this.unavailableChoice = remembered && !remembered.available ? remembered : null;
  }

  #fill() {
    const agents = this.items.filter((i) => i.kind === "agent");
    this.select.replaceChildren(...this.#options((item) => `${item.kind}:${item.id}`));
    this.#choose();

    if (this.filter) {
      const keep = this.filter.value;
      this.filter.replaceChildren(
        h("option", { value: "", text: "Any" }),
        ...agents.map((a) => h("option", { value: a.id, text: a.name })),
      );
      if (keep && !agents.some((a) => a.id === keep)) {
        this.filter.append(h("option", { value: keep, text: keep }));
      }
      this.filter.value = keep;
    }
  }

  #describe() {
    const item = this.byKey.get(this.select.value);
    this.note.dataset.kind = "info";
    if (!item) {
      this.note.textContent = this.items.length
        ? "Your words are transcribed; pick an agent to also get an answer."
        : "No agents are set up: your words are transcribed only.";
    } else {
      const what = item.kind === "pipeline" ? "Pipeline" : "Agent";
      this.note.textContent = item.description ? item.description : `${what} “${item.name}” answers each clip.`;
    }
  }

  /**
   * The person's default_agent (null: none). `saved`: they just chose it in their settings,
   * so it also becomes this browser's pick. Preselects it when it applies (see the header).
   */
  setDefault(name, { saved = false } = {}) {
    this.defaultName = name || null;
    if (saved && name) store(this.#keyOf(name) || "", name);
    if (!this.loaded) return; // load() chooses with it
    const before = this.select.value;
    this.#choose();
    if (this.select.value === before) return;
    this.#describe();
    this.onChange(this.current());
  }

  /**
   * Options for a dropdown of default_agent names (the settings' "Default Send to"): this
   * list, plus `selected` when the list lacks it (kept, so saving other settings keeps it).
   */
  nameOptions(selected) {
    const groups = this.#options((item) => item.id);
    const known = this.items.some((item) => item.id === selected);
    if (selected && !known) groups.push(h("option", { value: selected, text: `${selected} (not available now)` }));
    return groups;
  }

  /** {agent_id?, pipeline?, name} for the upload; {} when no agent is chosen. */
  current() {
    const item = this.byKey.get(this.select.value);
    if (!item || !item.available) return {};
    return item.kind === "pipeline"
      ? { pipeline: item.id, name: item.name }
      : { agent_id: item.id, name: item.name };
  }

  /** A person-friendly name for an agent or pipeline id. */
  nameOf(id, kind) {
    if (!id) return "";
    const item =
      this.byKey.get(`${kind || "agent"}:${id}`) || this.byKey.get(`agent:${id}`) || this.byKey.get(`pipeline:${id}`);
    return item ? item.name : id;
  }
}
