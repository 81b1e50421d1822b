// Push to talk: the button's pointer and keyboard input, the microphone's life cycle, the
// level meter and the timer. Hands each finished clip to `onClip`.
//
// A press streams when `beginCapture` gives it a streamed recording (streamed.js: PCM over
// the Realtime socket); otherwise it records with MediaRecorder for the upload path. Both
// look alike here: start at construction, stop() → clip, cancel().
//
// Input:
// - pointer (mouse, touch, pen): pointerdown starts (with pointer capture), pointerup,
//   pointercancel or lostpointercapture stops;
// - Space held anywhere on the page except in form fields and other controls (key
//   auto-repeat ignored; leaving the window counts as a release);
// - Enter on the button, or a click from assistive technology, toggles start/stop;
// - Escape while recording cancels: nothing is sent.

import { MAX_RECORDING_MS, MIN_RECORDING_MS, MicError, Microphone, Recording } from "./recorder.js";
import { formatClock } from "./ui.js";

const WARN_BEFORE_END_MS = 30_000;

function isSpace(event) {
  return event.code === "Space" || event.key === " " || event.key === "Spacebar";
}

/** Elements where Space already means something (typing, toggling, opening). */
function ownsSpace(target, pttButton) {
  if (!(target instanceof Element) || target === pttButton) return false;
  if (target.closest("[contenteditable=''], [contenteditable='true']")) return true;
  return Boolean(target.closest("input, textarea, select, button, a[href], summary, [role='textbox'], [role='button'], [role='checkbox'], [role='menuitem'], [role='option'], [role='switch'], [role='tab']"));
}

/**
 * options: button, level, timer, hooks {
 *   isBlocked() -> string|null     (a reason not to record now, e.g. rate limited),
 *   onBlocked(reason), onStatus(text), onMicError(MicError), onStart(), onTooShort(),
 *   onClip({kind, blob?, mimeType?, durationMs, peak, reason, …}), onWarn(text),
 *   onCancelled(),
 *   beginCapture(mic) -> Promise<streamed recording | null>   (optional: streaming)
 * }
 */
export function createTalk({ button, level, timer, hooks }) {
  const mic = new Microphone();
  const fill = level.querySelector(".level-fill");
  const label = button.querySelector(".ptt-label");
  let state = "idle"; // idle | acquiring | starting | recording | stopping
  let source = null; // pointer | key | toggle
  let held = false;
  let recording = null;
  let frame = 0;
  let maxTimer = 0;
  let peak = 0;
  let warned = false;
  let shownSecond = -1;
  let lastAria = 0;

  const maxLabel = formatClock(MAX_RECORDING_MS);

  function setVisual(next) {
    button.dataset.state = next;
    button.setAttribute("aria-pressed", next === "recording" ? "true" : "false");
    button.setAttribute("aria-busy", next === "acquiring" ? "true" : "false");
    label.textContent =
      next === "recording" ? (source === "toggle" ? "Recording… press to send" : "Release to send")
      : next === "acquiring" ? "Starting mic…"
      : "Hold to talk";
    document.body.classList.toggle("is-recording", next === "recording");
  }

  function setLevel(value) {
    fill.style.transform = `scaleX(${value.toFixed(3)})`;
    button.style.setProperty("--level", value.toFixed(3));
    level.dataset.level = value.toFixed(2);
    const now = performance.now();
    if (now - lastAria > 250 || value === 0) {
      level.setAttribute("aria-valuenow", String(Math.round(value * 100)));
      lastAria = now;
    }
  }

  function setTimer(ms) {
    const second = Math.floor(ms / 1000);
    if (second === shownSecond) return;
    shownSecond = second;
    timer.textContent = `${formatClock(ms)} / ${maxLabel}`;
    timer.dataset.warn = MAX_RECORDING_MS - ms <= WARN_BEFORE_END_MS ? "true" : "false";
  }

  function tick() {
    if (state !== "recording") return;
    const value = mic.level();
    if (value > peak) {
      peak = value;
      level.dataset.peak = peak.toFixed(2);
    }
    setLevel(value);
    const started = recording && recording.startedAt;
    const elapsed = started == null ? 0 : performance.now() - started;
    setTimer(elapsed);
    if (!warned && elapsed >= MAX_RECORDING_MS - WARN_BEFORE_END_MS) {
      warned = true;
      hooks.onWarn("30 seconds left: the recording stops by itself at " + maxLabel + ".");
    }
    frame = requestAnimationFrame(tick);
  }

  function resetMeters() {
    cancelAnimationFrame(frame);
    setLevel(0);
    shownSecond = -1;
    setTimer(0);
    timer.dataset.warn = "false";
  }

  async function press(from) {
    if (state === "recording" && source === "toggle" && from === "pointer") {
      finish("release"); // started with Enter: a click or tap sends it too
      return;
    }
    if (state !== "idle") return;
    const blocked = hooks.isBlocked();
    if (blocked) {
      hooks.onBlocked(blocked);
      return;
    }
    source = from;
    held = true;
    mic.wake(); // inside the gesture, so the AudioContext may start
    const firstTime = !mic.ready;
    if (firstTime) {
      state = "acquiring";
      setVisual("acquiring");
      hooks.onStatus("Starting the microphone…");
    }
    try {
      await mic.acquire();
    } catch (error) {
      state = "idle";
      held = false;
      setVisual("idle");
      hooks.onMicError(error instanceof MicError ? error : new MicError("unknown", String(error)));
      return;
    }
    if (!held) {
      // Released while the browser asked for permission: the mic is ready for next time.
      state = "idle";
      setVisual("idle");
      if (firstTime) hooks.onStatus("Microphone ready. Now hold the button while you talk.");
      return;
    }
    state = "starting";
    let streamed = null;
    if (hooks.beginCapture) {
      try {
        streamed = await hooks.beginCapture(mic);
      } catch {
        streamed = null; // whatever broke, the upload path still works
      }
    }
    if (!held) {
      // Released before the capture started (a tap): nothing worth sending.
      if (streamed) await streamed.cancel();
      state = "idle";
      source = null;
      setVisual("idle");
      hooks.onTooShort();
      return;
    }
    try {
      recording = streamed || new Recording(mic.stream);
    } catch (error) {
      state = "idle";
      held = false;
      setVisual("idle");
      hooks.onMicError(new MicError("unsupported", `This browser cannot record here (${error.message}).`));
      return;
    }
    state = "recording";
    peak = 0;
    warned = false;
    level.dataset.peak = "0";
    setVisual("recording");
    hooks.onStart();
    clearTimeout(maxTimer);
    maxTimer = setTimeout(() => finish("max"), MAX_RECORDING_MS);
    frame = requestAnimationFrame(tick);
  }

  function release(from) {
    if (source && from !== source) return; // e.g. a Space release while the mouse records
    held = false;
    if (state === "recording") finish("release");
  }

  async function finish(reason) {
    if (state !== "recording") return;
    state = "stopping";
    clearTimeout(maxTimer);
    const current = recording;
    recording = null;
    resetMeters();
    setVisual("idle");
    const clip = await current.stop();
    state = "idle";
    source = null;
    if (clip.durationMs < MIN_RECORDING_MS || clip.empty) {
      if (clip.discard) clip.discard();
      hooks.onTooShort();
      return;
    }
    hooks.onClip({ ...clip, peak, reason });
  }

  function toggle() {
    if (state === "recording") {
      if (source === "toggle") finish("release");
      return;
    }
    press("toggle");
  }

  // --- pointer -------------------------------------------------------------
  let pointerId = null;
  let ignoreClicksUntil = 0;

  button.addEventListener("pointerdown", (event) => {
    if (!event.isPrimary || (event.pointerType === "mouse" && event.button !== 0)) return;
    // Touch and pen: no emulated mouse events, no long-press callout. A mouse keeps its
    // default, so the button takes focus (no focus ring) and Space works afterwards.
    if (event.pointerType !== "mouse") event.preventDefault();
    if (pointerId !== null) return;
    pointerId = event.pointerId;
    try {
      button.setPointerCapture(event.pointerId);
    } catch {
      // Synthetic events may not be capturable; pointerup on the button still works.
    }
    press("pointer");
  });
  const pointerEnd = (event) => {
    if (event.pointerId !== pointerId) return;
    pointerId = null;
    ignoreClicksUntil = performance.now() + 600;
    release("pointer");
  };
  button.addEventListener("pointerup", pointerEnd);
  button.addEventListener("pointercancel", pointerEnd);
  button.addEventListener("lostpointercapture", pointerEnd);
  button.addEventListener("contextmenu", (event) => event.preventDefault());

  /** Stop without sending. */
  async function abort() {
    if (state !== "recording") return false;
    state = "stopping";
    clearTimeout(maxTimer);
    const current = recording;
    recording = null;
    resetMeters();
    setVisual("idle");
    await current.cancel();
    state = "idle";
    source = null;
    return true;
  }

  // --- keyboard ------------------------------------------------------------
  let spaceHeld = false;

  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape" || state !== "recording") return;
    event.preventDefault();
    held = false;
    abort().then((stopped) => stopped && hooks.onCancelled && hooks.onCancelled());
  });

  document.addEventListener("keydown", (event) => {
    if (!isSpace(event) || event.ctrlKey || event.metaKey || event.altKey) return;
    if (ownsSpace(event.target, button) || button.closest("[hidden]")) return;
    if (document.querySelector("dialog[open]")) return; // a dialog over the page has the keyboard
    event.preventDefault(); // no page scroll, no button click
    if (event.repeat || spaceHeld) return;
    spaceHeld = true;
    press("key");
  });
  document.addEventListener("keyup", (event) => {
    if (!isSpace(event) || !spaceHeld) return;
    event.preventDefault();
    spaceHeld = false;
    ignoreClicksUntil = performance.now() + 600;
    release("key");
  });
  const abandonKey = () => {
    if (!spaceHeld) return;
    spaceHeld = false;
    release("key");
  };
  window.addEventListener("blur", abandonKey);
  document.addEventListener("visibilitychange", () => {
    if (document.hidden) abandonKey();
  });

  button.addEventListener("keydown", (event) => {
    if (event.key !== "Enter") return;
    event.preventDefault();
    ignoreClicksUntil = performance.now() + 600;
    if (!event.repeat) toggle();
  });
  // Screen readers and switch access "click" without pointer or key events (detail 0).
  button.addEventListener("click", (event) => {
    if (performance.now() < ignoreClicksUntil || event.detail !== 0) return;
    toggle();
  });

  setVisual("idle");
  resetMeters();

  return {
    get state() {
      return state;
    },
    /** Stop without sending (logout, page hidden for good). */
    async cancel() {
      held = false;
      await abort();
    },
  };
}
