// "My settings": a dialog over the page for the person's own settings (GET/PUT
// api/me/settings, the shape of whisp_shared.user_settings.UserSettings), a field to try the
// replacements as drafted (POST api/me/settings/preview) and their data (mydata.js).
//
// The server validates; the page only turns what it cannot send (a retention that is not a
// number, a rule with nothing to listen for) into a message before asking. A 422 is shown
// as the server wrote it, above Save and at the field it names (the alert is the summary;
// the field's own line is what its input is described by). A draft survives closing the dialog;
// reopening it without unsaved changes shows the stored settings afresh (the CLI may have
// changed them meanwhile).

import { request } from "./api.js";
import { Code } from "./codes.js";
import { Limit } from "./limits.js";
import { MyData } from "./mydata.js";
import { ReplacementRows } from "./replacements.js";
import { $, sentence } from "./ui.js";
import { VocabularyList } from "./vocabulary.js";

const PREVIEW_DELAY_MS = 300;
const WHOLE_DAYS = /^\d+$/;

/** Field path (the server's, as in "field 'language': …") → the label a person sees. */
const LABELS = {
  vocabulary: "Words to expect",
  replacements: "Replacements",
  default_agent: "Default “Send to”",
  language: "Language",
  keep_audio: "Keep the audio",
  audio_retention_days: "Delete audio after",
  transcript_retention_days: "Delete transcripts after",
};

const clip = (text, n = 24) => (text.length > n ? `${text.slice(0, n)}…` : text);

/** An API route named in a message is for developers, not for the person reading it. */
const withoutRoutes = (message) => message.replace(/\s*\((?:GET|POST|PUT|PATCH|DELETE) \/[^)]*\)/g, "");

export class SettingsPanel {
  /**
   * agents: the AgentPicker (its list fills the default-agent dropdown); userName(): who is
   * signed in. hooks: onSaved(settings, previous), onDeleted(answer, text).
   */
  constructor({ dialog, opener, agents, userName, onSaved, onDeleted }) {
    this.dialog = dialog;
    this.opener = opener;
    this.agents = agents;
    this.onSaved = onSaved;
    this.saved = null; // the stored settings, as the server last answered them
    const el = (id) => $(`#${id}`, dialog);
    this.els = {
      form: el("settings-form"),
      error: el("settings-error"),
      state: el("settings-state"),
      save: el("settings-save"),
      agent: el("default-agent"),
      language: el("language"),
      keepAudio: el("keep-audio"),
      audioDays: el("audio-days"),
      transcriptDays: el("transcript-days"),
      preview: el("preview-input"),
      result: el("preview-result"),
    };
    this.els.preview.maxLength = Limit.PREVIEW_CHARS;
    this.fieldErrors = {
      vocabulary: el("vocabulary-error"),
      replacements: el("replacements-error"),
      default_agent: el("default-agent-error"),
      language: el("language-error"),
      keep_audio: el("settings-error"),
      audio_retention_days: el("audio-days-error"),
      transcript_retention_days: el("transcript-days-error"),
    };
    const changed = () => this.#changed();
    this.vocabulary = new VocabularyList({
      list: el("vocabulary-list"),
      input: el("vocabulary-input"),
      add: el("vocabulary-add"),
      count: el("vocabulary-count"),
      error: el("vocabulary-error"),
      onInput: changed,
    });
    this.rules = new ReplacementRows({
      list: el("replacements-list"),
      add: el("replacements-add"),
      count: el("replacements-count"),
      describedBy: "replacements-error",
      onInput: () => {
        changed();
        this.#schedulePreview();
      },
    });
    this.myData = new MyData(dialog, { userName, onDeleted: (answer, text) => this.#deleted(answer, text, onDeleted) });
    for (const input of [this.els.agent, this.els.language, this.els.keepAudio, this.els.audioDays, this.els.transcriptDays]) {
      input.addEventListener(input.tagName === "SELECT" || input.type === "checkbox" ? "change" : "input", changed);
    }
    this.els.preview.addEventListener("input", () => this.#schedulePreview());
    this.els.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.#save();
    });
    opener.addEventListener("click", () => this.open());
    $("#settings-close", dialog).addEventListener("click", () => dialog.close());
    dialog.addEventListener("close", () => {
      this.myData.reset();
      if (!opener.hidden) opener.focus();
    });
  }

  /** Signed in: offer the dialog and read the settings (null when they cannot be read). */
  signedIn() {
    this.opener.hidden = false;
    return this.load();
  }

  signedOut() {
    if (this.dialog.open) this.dialog.close();
    this.opener.hidden = true;
    this.saved = null;
    this.#fill({});
    this.myData.reset();
  }

  async load() {
    let settings;
    try {
      settings = await request("api/me/settings");
    } catch (error) {
      if (this.dialog.open) this.#state("error", `Your settings could not be loaded: ${sentence(error.message, false)}`);
      return null;
    }
    const draft = this.saved && this.#dirty();
    this.saved = settings;
    if (!draft) this.#fill(settings);
    return settings;
  }

  async open() {
    this.dialog.showModal();
    $("#vocabulary-input", this.dialog).focus();
    if (!this.saved || !this.#dirty()) {
      this.#fill(this.saved || {}); // at once (the agent list may be newer), then afresh
      await this.load();
    } else {
      this.#fillAgents(this.els.agent.value);
    }
  }

  /** The agent list is (newly) known: the default-agent dropdown offers it. */
  agentsLoaded() {
    this.#fillAgents(this.els.agent.value);
  }

  // --- the form ----------------------------------------------------------------------------

  #fill(s) {
    this.vocabulary.set(s.vocabulary || []);
    this.rules.set(s.replacements || []);
    this.#fillAgents(s.default_agent || "");
    this.els.language.value = s.language || "";
    this.els.keepAudio.checked = s.keep_audio !== false;
    this.els.audioDays.value = s.audio_retention_days ?? "";
    this.els.transcriptDays.value = s.transcript_retention_days ?? "";
    this.#clearErrors();
    this.#state(this.saved ? "saved" : "", this.saved ? "All changes saved." : "");
    this.#schedulePreview();
  }

  #fillAgents(value) {
    this.els.agent.replaceChildren(...this.agents.nameOptions(value));
    this.els.agent.value = value;
  }

  /** {settings} as typed, or {problem: {field, message}} for what cannot be sent. */
  #collect() {
    const days = (input, field) => {
      const text = input.value.trim();
      if (!text) return { value: null };
      if (WHOLE_DAYS.test(text)) return { value: Number(text) };
      return { problem: { field, message: `${LABELS[field]}: whole days, such as 30, or empty to keep.` } };
    };
    const audio = days(this.els.audioDays, "audio_retention_days");
    const transcripts = days(this.els.transcriptDays, "transcript_retention_days");
    const problem = audio.problem || transcripts.problem;
    if (problem) return { problem };
    const missing = this.rules.missingSpoken();
    if (missing >= 0) {
      const message = `Replacement ${missing + 1}: say what you say, on the left, or remove the row.`;
      return { problem: { field: "replacements", index: missing, part: "spoken", message } };
    }
    let language = this.els.language.value.trim();
    if (/^[A-Za-z]{2,3}$/.test(language)) language = language.toLowerCase();
    return {
      settings: {
        vocabulary: this.vocabulary.value(),
        replacements: this.rules.value(),
        default_agent: this.els.agent.value || null,
        language: language || null,
        keep_audio: this.els.keepAudio.checked,
        audio_retention_days: audio.value,
        transcript_retention_days: transcripts.value,
      },
    };
  }

  #dirty() {
    const { settings } = this.#collect();
    if (!settings) return true;
    const saved = this.saved || {};
    return Object.keys(settings).some((key) => JSON.stringify(settings[key]) !== JSON.stringify(saved[key] ?? null));
  }

  #changed() {
    if (this.#dirty()) this.#state("dirty", "Unsaved changes.");
    else this.#state("saved", "All changes saved.");
  }

  #state(kind, text) {
    this.els.state.dataset.state = kind;
    this.els.state.textContent = text;
  }

  async #save() {
    this.#clearErrors();
    const { settings, problem } = this.#collect();
    if (problem) {
      this.#showProblems([problem]);
      return;
    }
    const previous = this.saved;
    this.els.save.disabled = true;
    this.#state("saving", "Saving…");
    try {
      this.saved = await request("api/me/settings", { method: "PUT", json: settings });
    } catch (error) {
      this.#refused(error);
      return;
    } finally {
      this.els.save.disabled = false;
    }
    this.#fill(this.saved); // as the server keeps them (each word once, trimmed)
    this.#state("saved", "Saved.");
    this.onSaved(this.saved, previous);
  }

  // --- errors ------------------------------------------------------------------------------

  #refused(error) {
    this.#state("error", "Not saved.");
    if (error.code === Code.UNKNOWN_AGENT) {
      this.#showProblems([{ field: "default_agent", message: `${LABELS.default_agent}: ${withoutRoutes(error.message)}` }]);
      return;
    }
    if (error.code === Code.INVALID_REQUEST) {
      this.#showProblems(this.#parse(error.message));
      return;
    }
    const tail = error.status === 0 ? "the server cannot be reached." : sentence(withoutRoutes(error.message), false);
    this.#showProblems([{ field: "", message: `Not saved: ${tail} Your changes are still here: try again.` }]);
  }

  /** The server's "field 'replacements.1.spoken': …; field 'language': …" in the form's words. */
  #parse(message) {
    return message.split("; ").map((part) => {
      const found = /^field '([^']+)'(?:: | )(.*)$/s.exec(part);
      if (!found) return { field: "", message: sentence(part) };
      const [field, index, sub] = found[1].split(".");
      const text = sentence(found[2].replace(/^Value error, /, ""), false);
      const n = Number(index);
      if (field === "vocabulary" && Number.isInteger(n)) {
        const term = this.vocabulary.value()[n] || "";
        return { field, index: n, message: `Word ${n + 1} (“${clip(term)}”): ${text}` };
      }
      if (field === "replacements" && Number.isInteger(n)) {
        const side = sub === "written" ? "what is written" : "what you say";
        return { field, index: n, part: sub, message: `Replacement ${n + 1}, ${side}: ${text}` };
      }
      return { field: field in LABELS ? field : "", message: `${LABELS[field] || "Settings"}: ${text}` };
    });
  }

  #showProblems(problems) {
    this.els.error.textContent = problems.map((p) => p.message).join(" ");
    let first = null;
    for (const problem of problems) {
      const line = this.fieldErrors[problem.field];
      if (line && line !== this.els.error) line.textContent = `${line.textContent} ${problem.message}`.trim();
      const target = this.#fieldOf(problem);
      if (target) {
        target.setAttribute("aria-invalid", "true");
        first = first || target;
      }
    }
    if (first) first.scrollIntoView({ block: "nearest" });
  }

  #fieldOf({ field, index, part }) {
    if (field === "vocabulary") return Number.isInteger(index) ? this.vocabulary.item(index) : null;
    if (field === "replacements") return Number.isInteger(index) ? this.rules.field(index, part) : null;
    const inputs = {
      default_agent: this.els.agent,
      language: this.els.language,
      keep_audio: this.els.keepAudio,
      audio_retention_days: this.els.audioDays,
      transcript_retention_days: this.els.transcriptDays,
    };
    return inputs[field] || null;
  }

  #clearErrors() {
    this.els.error.textContent = "";
    for (const line of Object.values(this.fieldErrors)) line.textContent = "";
    for (const el of this.dialog.querySelectorAll("[aria-invalid=true]")) el.setAttribute("aria-invalid", "false");
  }

  // --- the replacements' test field --------------------------------------------------------

  #schedulePreview() {
    clearTimeout(this.previewTimer);
    this.previewTimer = setTimeout(() => this.#preview(), PREVIEW_DELAY_MS);
  }

  async #preview() {
    const { preview, result } = this.els;
    if (this.previewController) this.previewController.abort();
    const text = preview.value;
    if (!text.trim()) {
      result.textContent = "";
      result.dataset.state = "";
      return;
    }
    const controller = new AbortController();
    this.previewController = controller;
    result.dataset.state = "pending";
    const replacements = this.rules.value().filter((rule) => rule.spoken); // a half-typed row waits
    let answer;
    try {
      answer = await request("api/me/settings/preview", {
        method: "POST",
        json: { text, replacements },
        signal: controller.signal,
      });
    } catch (error) {
      if (error.name === "AbortError") return;
      result.dataset.state = "error";
      const why =
        error.code === Code.INVALID_REQUEST
          ? this.#parse(error.message).map((problem) => problem.message).join(" ")
          : sentence(error.message);
      result.textContent = `These replacements cannot be tried yet. ${why}`;
      return;
    }
    result.dataset.state = "ok";
    result.textContent = answer.text;
  }

  #deleted(answer, text, onDeleted) {
    this.saved = null;
    this.#fill({});
    this.load(); // the defaults, as the server now has them
    onDeleted(answer, text);
  }
}
