// The talk panel's two message areas: the polite status line ("Uploading…", "Transcript
// ready.") and the #error alert, which holds one actionable message at a time (a new one
// replaces the old: the person needs the latest problem, not a pile).
//
// The alert's data-code says which message shows (for tests and styling): a server code
// (`Code.X`) when a server said what went wrong, else one of the page's own `NoticeCode`s.

import { h } from "./ui.js";

/** Client-side notice names, for messages no server code describes. Not server codes. */
export const NoticeCode = Object.freeze({
  GENERIC: "error",
  RESULT_FAILED: "result_failed", // a transcript or answer failed without a code
  UPLOAD_FAILED: "upload_failed", // an upload failed without a code
  DELETE_FAILED: "delete_failed",
  TOO_SHORT: "too_short", // the clip was too short to send
  TOO_LONG: "too_long", // the clip hit the time limit and was sent
  mic: (kind) => `mic_${kind}`, // a MicError.kind from recorder.js
});

export class StatusLine {
  constructor(el) {
    this.el = el;
  }

  /** The visible status; `detail` (e.g. the transcript itself) is for screen readers only. */
  set(text, detail = "") {
    this.el.replaceChildren(text);
    if (detail) this.el.append(h("span", { class: "visually-hidden", text: ` ${detail}` }));
  }
}

export class Notice {
  constructor(el) {
    this.el = el;
    this.teardown = null; // the shown message's own clean-up (a countdown's timer, say)
  }

  /** The data-code of the message on show ("" when none). */
  get code() {
    return this.el.dataset.code || "";
  }

  /** error | warn | hint ("" when none) */
  get kind() {
    return this.el.dataset.kind || "";
  }

  /**
   * Show one message. `message` is a string or a node. options: title, code (data-code),
   * kind (error | warn | hint), actions [{label, onClick}], onRemove (runs when this
   * message is replaced or dismissed).
   */
  show(message, { title = "", code = NoticeCode.GENERIC, kind = "error", actions = [], onRemove = null } = {}) {
    this.#teardown();
    this.teardown = onRemove;
    const dismiss = h("button", {
      type: "button",
      class: "btn btn-quiet btn-small error-dismiss",
      "aria-label": "Dismiss this message",
      text: "Dismiss",
      on: { click: () => this.clear() },
    });
    this.el.dataset.code = code;
    this.el.dataset.kind = kind;
    this.el.replaceChildren(
      h(
        "div",
        { class: "error-body" },
        title ? h("strong", { class: "error-title", text: title }) : null,
        h("p", { class: "error-message" }, message),
      ),
      h(
        "div",
        { class: "error-actions" },
        ...actions.map(({ label, onClick }) =>
          h("button", { type: "button", class: "btn btn-secondary btn-small", text: label, on: { click: onClick } }),
        ),
        dismiss,
      ),
    );
  }

  clear() {
    this.#teardown();
    this.el.replaceChildren();
    delete this.el.dataset.code;
    delete this.el.dataset.kind;
  }

  #teardown() {
    const teardown = this.teardown;
    this.teardown = null;
    if (teardown) teardown();
  }
}
