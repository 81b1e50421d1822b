// After a 429: recording is blocked until the server takes clips again, and the alert
// counts down to that moment.
//
// Two timers on purpose: the countdown belongs to the alert (another message may replace
// it, and then it stops), while the moment the button is usable again must come whatever
// the alert shows meanwhile.

import { Code } from "./codes.js";
import { describeDuration, formatClock, h } from "./ui.js";

export class RateLimit {
  /** notice: Notice; status: StatusLine; button: the talk button (aria-disabled while blocked) */
  constructor({ notice, status, button }) {
    this.notice = notice;
    this.status = status;
    this.button = button;
    this.until = 0; // ms timestamp
    this.unblockTimer = 0;
  }

  /** Seconds until recording is allowed again (0: allowed now). */
  secondsLeft() {
    return Math.max(0, Math.ceil((this.until - Date.now()) / 1000));
  }

  /** The server said: wait `seconds`. */
  start(seconds) {
    this.until = Math.max(this.until, Date.now() + seconds * 1000);
    this.button.setAttribute("aria-disabled", "true");
    clearTimeout(this.unblockTimer);
    this.unblockTimer = setTimeout(() => this.#unblock(), this.until - Date.now() + 50);
    this.show();
  }

  /** (Again) show the countdown, e.g. when someone presses the button while blocked. */
  show() {
    const left = this.secondsLeft();
    if (left <= 0) return;
    const countdown = h("span", { class: "countdown", "aria-hidden": "true", text: formatClock(left * 1000) });
    const timer = setInterval(() => {
      countdown.textContent = formatClock(this.secondsLeft() * 1000);
    }, 1000);
    this.notice.show(
      h(
        "span",
        {},
        "You sent a lot of clips in a short time. You can record again in ",
        countdown,
        h("span", { class: "visually-hidden", text: describeDuration(left) }),
        ".",
      ),
      { title: "Slow down a little", code: Code.RATE_LIMITED, kind: "warn", onRemove: () => clearInterval(timer) },
    );
  }

  #unblock() {
    if (this.secondsLeft() > 0) {
      // `start` moved the moment further out meanwhile.
      this.unblockTimer = setTimeout(() => this.#unblock(), this.until - Date.now() + 50);
      return;
    }
    this.button.removeAttribute("aria-disabled");
    if (this.notice.code === Code.RATE_LIMITED) this.notice.clear();
    this.status.set("You can record again.");
  }
}
