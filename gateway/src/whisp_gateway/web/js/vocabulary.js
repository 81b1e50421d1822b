// The settings' vocabulary: the words a person wants the recogniser to expect, as a list of
// removable terms and a field to add one. Each term once (ignoring case), as the server
// keeps them; how long a term may be is the server's to say (its 422 names the term).

import { Limit } from "./limits.js";
import { h } from "./ui.js";

export class VocabularyList {
  /** list: the <ul>; input + add: the new term; count: "n of max"; error: the field's line. */
  constructor({ list, input, add, count, error, onInput }) {
    Object.assign(this, { list, input, addButton: add, count, error });
    this.onInput = onInput || (() => {});
    this.terms = [];
    add.addEventListener("click", () => this.#addTyped());
    input.addEventListener("keydown", (event) => {
      if (event.key !== "Enter") return;
      event.preventDefault(); // Enter adds the term; it does not save the form
      this.#addTyped();
    });
  }

  set(terms) {
    this.terms = [...terms];
    this.#render();
  }

  value() {
    return [...this.terms];
  }

  /** The element that shows term `index`, to point an error at. */
  item(index) {
    return this.list.children[index] || null;
  }

  #addTyped() {
    const term = this.input.value.trim();
    this.error.textContent = "";
    if (!term) {
      this.input.focus();
      return;
    }
    if (this.terms.some((t) => t.toLowerCase() === term.toLowerCase())) {
      this.error.textContent = `“${term}” is already in your words.`;
      return;
    }
    if (this.terms.length >= Limit.VOCABULARY) {
      this.error.textContent = `You have ${Limit.VOCABULARY} words, the most there can be: remove one first.`;
      return;
    }
    this.terms.push(term);
    this.input.value = "";
    this.#render();
    this.input.focus();
    this.onInput();
  }

  #remove(index) {
    this.terms.splice(index, 1);
    this.#render();
    const next = this.list.children[Math.min(index, this.terms.length - 1)];
    (next ? next.querySelector("button") : this.input).focus();
    this.onInput();
  }

  #render() {
    this.list.replaceChildren(
      ...this.terms.map((term, index) =>
        h(
          "li",
          { class: "term", dataset: { testid: "term" } },
          h("span", { class: "term-text", text: term }),
          h("button", {
            type: "button",
            class: "term-remove",
            "aria-label": `Remove “${term}”`,
            text: "×",
            on: { click: () => this.#remove(index) },
          }),
        ),
      ),
    );
    this.list.hidden = this.terms.length === 0;
    this.count.textContent = `${this.terms.length} of ${Limit.VOCABULARY} words.`;
  }
}
