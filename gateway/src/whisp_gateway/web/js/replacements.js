// The settings' replacement rules: rows of spoken → written, added and removed in place.
//
// A written text may hold line breaks ("new paragraph" → a blank line, as
// whisp_shared.dictation inserts it as given), which a one-line field cannot show: the field
// shows them as `\n` (a backslash as `\\`, a tab as `\t`), and reading the field turns those
// back. Any other backslash stays as typed, so "C:\dir" needs no escaping.

import { Limit } from "./limits.js";
import { h } from "./ui.js";

const ESCAPES = { n: "\n", t: "\t", "\\": "\\" };

/** A written text as its field shows it: line breaks as \n. */
export function showWritten(text) {
  return String(text).replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/\t/g, "\\t");
}

/** What a written field means: \n a line break, \t a tab, \\ a backslash. */
export function readWritten(shown) {
  return String(shown).replace(/\\([nt\\])/g, (_match, c) => ESCAPES[c]);
}

export class ReplacementRows {
  /**
   * list: the <ol>; add: its "Add a replacement" button; count: the "n of max" line;
   * describedBy: the id of the line their errors go to.
   */
  constructor({ list, add, count, describedBy, onInput }) {
    this.list = list;
    this.describedBy = describedBy;
    this.addButton = add;
    this.count = count;
    this.onInput = onInput || (() => {});
    this.serial = 0;
    add.addEventListener("click", () => {
      const row = this.#row({ spoken: "", written: "" });
      this.list.append(row);
      this.#counted();
      row.querySelector("input").focus();
    });
  }

  /** Show these rules (the server's). */
  set(rules) {
    this.list.replaceChildren(...rules.map((rule) => this.#row(rule)));
    this.#counted();
  }

  /** The rules as typed, in order; rows with neither side filled in are left out. */
  value() {
    return this.#rows()
      .map(({ spoken, written }) => ({ spoken: spoken.value.trim(), written: readWritten(written.value) }))
      .filter((rule) => rule.spoken || rule.written);
  }

  /** The input of rule `index` of value() ("spoken" or "written"), to point an error at. */
  field(index, part) {
    const rows = this.#rows().filter(({ spoken, written }) => spoken.value.trim() || written.value);
    const row = rows[index];
    return row ? row[part === "written" ? "written" : "spoken"] : null;
  }

  /** A rule whose spoken side is empty: its 0-based index in value(), or -1. */
  missingSpoken() {
    return this.value().findIndex((rule) => !rule.spoken);
  }

  #rows() {
    return [...this.list.children].map((row) => ({
      spoken: row.querySelector("[data-part=spoken]"),
      written: row.querySelector("[data-part=written]"),
    }));
  }

  #row(rule) {
    const n = ++this.serial;
    const input = (part, label, placeholder) => [
      h("label", { for: `rule-${n}-${part}`, class: "visually-hidden", text: label }),
      h("input", {
        id: `rule-${n}-${part}`,
        type: "text",
        autocomplete: "off",
        spellcheck: "false",
        placeholder,
        "aria-describedby": this.describedBy,
        dataset: { part, testid: `rule-${part}` },
        on: { input: () => this.onInput() },
      }),
    ];
    const row = h(
      "li",
      { class: "rule", dataset: { testid: "rule" } },
      h("span", { class: "rule-side" }, input("spoken", "When I say", "When I say… (k8s)")),
      h("span", { class: "rule-arrow", "aria-hidden": "true", text: "→" }),
      h("span", { class: "rule-side" }, input("written", "Write", "Write… (Kubernetes)")),
      h("button", {
        type: "button",
        class: "btn btn-quiet btn-small",
        text: "Remove",
        "aria-label": "Remove this replacement",
        dataset: { testid: "rule-remove" },
        on: { click: () => this.#remove(row) },
      }),
    );
    row.querySelector("[data-part=spoken]").value = rule.spoken;
    row.querySelector("[data-part=written]").value = showWritten(rule.written);
    return row;
  }

  #remove(row) {
    const next = row.nextElementSibling || row.previousElementSibling;
    row.remove();
    this.#counted();
    (next ? next.querySelector("input") : this.addButton).focus();
    this.onInput();
  }

  #counted() {
    const n = this.list.children.length;
    this.count.textContent = `${n} of ${Limit.REPLACEMENTS} replacements.`;
    this.addButton.disabled = n >= Limit.REPLACEMENTS;
  }
}
