// Small DOM helpers shared by the page's modules. User data only ever goes into the DOM as
// text (textContent), never as HTML.

/**
 * Create an element. attrs: class, text, dataset {…}, hidden, on {event: handler}, and any
 * other attribute (aria-*, type, …; false/null skips it). Children: nodes or strings.
 */
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === false || value == null) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "on") {
      for (const [event, handler] of Object.entries(value)) node.addEventListener(event, handler);
    } else if (key === "hidden") node.hidden = Boolean(value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child == null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export const $ = (selector, root = document) => root.querySelector(selector);

/** A server message as a sentence: capital first letter (optional), final full stop. */
export function sentence(text, capital = true) {
  let out = String(text || "").trim();
  if (!out) return "";
  if (capital) out = out[0].toUpperCase() + out.slice(1);
  return /[.!?…]$/.test(out) ? out : `${out}.`;
}

/** 0:07, 1:23, 12:00 */
export function formatClock(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const minutes = Math.floor(total / 60);
  const seconds = String(total % 60).padStart(2, "0");
  return `${minutes}:${seconds}`;
}

/** "5 minutes", "1 minute 30 seconds", "42 seconds" (for screen readers and messages). */
export function describeDuration(totalSeconds) {
  const s = Math.max(0, Math.round(totalSeconds));
  const m = Math.floor(s / 60);
  const rest = s % 60;
  const parts = [];
  if (m) parts.push(`${m} minute${m === 1 ? "" : "s"}`);
  if (rest || !m) parts.push(`${rest} second${rest === 1 ? "" : "s"}`);
  return parts.join(" ");
}

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit" });
const dateTimeFormat = new Intl.DateTimeFormat(undefined, {
  month: "short",
  day: "numeric",
  hour: "numeric",
  minute: "2-digit",
});
const fullFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "medium" });

/** A <time> element: the time only for today, the date and time otherwise. */
export function timeElement(value) {
  const date = value instanceof Date ? value : new Date(value);
  if (Number.isNaN(date.getTime())) return h("time", { text: "" });
  const today = new Date();
  const sameDay = date.toDateString() === today.toDateString();
  let label = sameDay ? timeFormat.format(date) : dateTimeFormat.format(date);
  if (!sameDay && date.getFullYear() !== today.getFullYear()) {
    label = `${label}, ${date.getFullYear()}`;
  }
  return h("time", { datetime: date.toISOString(), title: fullFormat.format(date), text: label });
}

/** Copy text to the clipboard; falls back to a hidden textarea where the API is missing. */
export async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch {
      // Permission refused or no focus: try the old way below.
    }
  }
  const area = h("textarea", {
    readonly: true,
    "aria-hidden": "true",
    style: "position:fixed;top:0;left:0;width:1px;height:1px;opacity:0;",
  });
  area.value = text;
  const previous = document.activeElement;
  document.body.append(area);
  area.select();
  let ok = false;
  try {
    ok = document.execCommand("copy");
  } catch {
    ok = false;
  }
  area.remove();
  if (previous instanceof HTMLElement) previous.focus({ preventScroll: true });
  return ok;
}

/** A "Copy" button that copies getText() and confirms on itself for a moment. */
export function copyButton(getText, label = "Copy", describedAs = "Copy the transcript") {
  const button = h("button", {
    type: "button",
    class: "btn btn-quiet btn-small copy",
    "aria-label": describedAs,
    text: label,
  });
  let timer = 0;
  button.addEventListener("click", async () => {
    const ok = await copyText(getText());
    button.textContent = ok ? "Copied" : "Copy failed";
    button.dataset.copied = ok ? "true" : "false";
    clearTimeout(timer);
    timer = setTimeout(() => {
      button.textContent = label;
      delete button.dataset.copied;
    }, 1600);
  });
  return button;
}
