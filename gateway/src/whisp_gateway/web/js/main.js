// WhisPTT web page: sign-in, push to talk, live results, history. Wires the modules
// together and turns every failure into a message a person can act on.

import { AgentPicker } from "./agents.js";
import { onUnauthorized, request, upload } from "./api.js";
import { LiveConnection } from "./events.js";
import { History } from "./history.js";
import { LiveResults } from "./live.js";
import { MAX_RECORDING_MS, fileNameFor } from "./recorder.js";
import { createTalk } from "./talk.js";
import { $, describeDuration, formatClock, h, sentence } from "./ui.js";

const els = {
  views: {
    boot: $("#boot-view"),
    unreachable: $("#unreachable-view"),
    login: $("#login-view"),
    app: $("#app-view"),
  },
  unreachableDetail: $("#unreachable-detail"),
  unreachableRetry: $("#unreachable-retry"),
  loginForm: $("#login-form"),
  token: $("#token"),
  loginError: $("#login-error"),
  loginSubmit: $("#login-submit"),
  user: $("#user"),
  userName: $("#user-name"),
  logout: $("#logout"),
  connection: $("#connection"),
  agent: $("#agent"),
  agentNote: $("#agent-note"),
  agentRetry: $("#agent-retry"),
  ptt: $("#ptt"),
  level: $("#level"),
  timer: $("#timer"),
  status: $("#status"),
  error: $("#error"),
  results: $("#results"),
  resultsEmpty: $("#results-empty"),
};

const state = {
  user: null, // the signed-in user ({id, name}) while the app view shows
  lastUserId: null,
  retryUntil: 0, // rate limited until (ms timestamp)
  countdownTimer: 0,
  bootTimer: 0,
};

// --- status and errors ----------------------------------------------------------------

/** The visible status line; `detail` (e.g. the transcript itself) is for screen readers only. */
function setStatus(text, detail = "") {
  els.status.replaceChildren(text);
  if (detail) els.status.append(h("span", { class: "visually-hidden", text: ` ${detail}` }));
}

/**
 * Show one actionable message in the #error alert region.
 * options: title, code (data-code, for tests and styling), kind (error | warn | hint),
 * actions [{label, onClick}]. `message` is a string or a node.
 */
function showError(message, { title = "", code = "error", kind = "error", actions = [] } = {}) {
  clearInterval(state.countdownTimer);
  const dismiss = h("button", {
    type: "button",
    class: "btn btn-quiet btn-small error-dismiss",
    "aria-label": "Dismiss this message",
    text: "Dismiss",
    on: { click: clearError },
  });
  els.error.dataset.code = code;
  els.error.dataset.kind = kind;
  els.error.replaceChildren(
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

function clearError() {
  clearInterval(state.countdownTimer);
  els.error.replaceChildren();
  delete els.error.dataset.code;
  delete els.error.dataset.kind;
}

function rateLimitedFor() {
  return Math.max(0, Math.ceil((state.retryUntil - Date.now()) / 1000));
}

/** 429: block recording and count down to the moment the server takes clips again. */
function startRateLimit(seconds) {
  state.retryUntil = Math.max(state.retryUntil, Date.now() + seconds * 1000);
  showRateLimit();
}

function showRateLimit() {
  const left = rateLimitedFor();
  if (left <= 0) return;
  const countdown = h("span", { class: "countdown", "aria-hidden": "true", text: formatClock(left * 1000) });
  showError(
    h(
      "span",
      {},
      "You sent a lot of clips in a short time. You can record again in ",
      countdown,
      h("span", { class: "visually-hidden", text: describeDuration(left) }),
      ".",
    ),
    { title: "Slow down a little", code: "rate_limited", kind: "warn" },
  );
  els.ptt.setAttribute("aria-disabled", "true");
  state.countdownTimer = setInterval(() => {
    const remaining = rateLimitedFor();
    countdown.textContent = formatClock(remaining * 1000);
    if (remaining <= 0) {
      clearInterval(state.countdownTimer);
      els.ptt.removeAttribute("aria-disabled");
      if (els.error.dataset.code === "rate_limited") clearError();
      setStatus("You can record again.");
    }
  }, 1000);
}

function focusPtt() {
  els.ptt.focus({ preventScroll: false });
}

// --- views --------------------------------------------------------------------------

function showView(name) {
  for (const [key, view] of Object.entries(els.views)) view.hidden = key !== name;
  els.views.boot.setAttribute("aria-busy", name === "boot" ? "true" : "false");
  const signedIn = name === "app";
  els.user.hidden = !signedIn;
  if (!signedIn) els.logout.hidden = true;
}

// --- the pieces -----------------------------------------------------------------------

const agents = new AgentPicker({
  select: els.agent,
  note: els.agentNote,
  retry: els.agentRetry,
  filter: $("#filter-agent"),
});
const nameOf = (id, kind) => agents.nameOf(id, kind);

function announce(text, { kind = "info", code = "", detail = "" } = {}) {
  if (kind === "error") {
    setStatus("");
    const unavailable = code === "unknown_agent" || code === "agent_unavailable";
    showError(text, {
      title: unavailable ? "Agent unavailable" : "",
      code: code || "result_failed",
      kind: "error",
    });
  } else {
    setStatus(text, detail);
  }
}

const live = new LiveResults(els.results, {
  nameOf,
  announce,
  onEmpty: (empty) => {
    els.resultsEmpty.hidden = !empty;
  },
});

const history = new History(
  {
    list: $("#history"),
    status: $("#history-status"),
    loadMore: $("#load-more"),
    refresh: $("#history-refresh"),
    form: $("#history-filters"),
    search: $("#search"),
    from: $("#filter-from"),
    to: $("#filter-to"),
    agent: $("#filter-agent"),
    filterError: $("#filter-error"),
    exports: Object.fromEntries(
      ["jsonl", "csv", "txt", "srt", "vtt"].map((format) => [format, $(`#export-${format}`)]),
    ),
  },
  {
    nameOf,
    announce: (text, kind) => (kind === "error" ? showError(text, { code: "delete_failed" }) : setStatus(text)),
    onDeleted: (id) => live.remove(id),
  },
);

const connection = new LiveConnection({
  indicator: els.connection,
  onEvent: (type, data) => {
    live.handle(type, data);
    history.handleEvent(type, data);
  },
  onResync: () => live.resync(),
  onUnauthorized: () => sessionEnded(),
});

// --- recording and upload -----------------------------------------------------------------

const MIC_TITLES = {
  denied: "Microphone blocked",
  missing: "No microphone found",
  busy: "Microphone unavailable",
  insecure: "Microphone needs a secure page",
  unsupported: "Recording not supported",
};

createTalk({
  button: els.ptt,
  level: els.level,
  timer: els.timer,
  hooks: {
    isBlocked: () => (rateLimitedFor() > 0 ? "rate_limited" : null),
    onBlocked: () => showRateLimit(),
    onStatus: setStatus,
    onWarn: setStatus,
    onMicError: (error) => {
      setStatus("");
      showError(error.message, {
        title: MIC_TITLES[error.kind] || "Microphone problem",
        code: `mic_${error.kind}`,
        actions: [{ label: "Try again", onClick: () => { clearError(); focusPtt(); } }],
      });
    },
    onStart: () => {
      if (els.error.dataset.kind !== "warn") clearError();
      setStatus("Recording… release to send.");
      document.title = "● Recording – WhisPTT";
    },
    onTooShort: () => {
      document.title = "WhisPTT";
      setStatus("");
      showError("That was too short to send. Hold the button (or Space) down while you talk, then release.", {
        title: "Hold to talk",
        code: "too_short",
        kind: "hint",
      });
    },
    onClip: (clip) => {
      document.title = "WhisPTT";
      const target = agents.current();
      const card = live.addClip({ durationMs: clip.durationMs, target });
      if (clip.reason === "max") {
        showError(
          `Recordings stop at ${formatClock(MAX_RECORDING_MS)} (${describeDuration(MAX_RECORDING_MS / 1000)}); ` +
            "what you said so far is being sent. Hold the button again to go on.",
          { title: "Time limit reached", code: "too_long", kind: "warn" },
        );
      }
      sendClip(card, clip, target);
    },
  },
});

function uploadFailureText(error) {
  const { status, code, message } = error;
  if (status === 0) return "The server cannot be reached. Check your connection, then retry.";
  if (status === 401) return "Your session has ended. Sign in again, then retry.";
  if (code === "upload_too_large" || (status === 413 && code !== "audio_too_long")) {
    return `The recording is too large to upload: ${sentence(message, false)} Record a shorter clip.`;
  }
  if (code === "audio_too_long") return `${sentence(message)} Record a shorter clip.`;
  if (status === 415 || code === "unsupported_media_type") {
    return "The server cannot read the audio this browser recorded. Try another browser.";
  }
  if (code === "unknown_agent" || code === "agent_unavailable") {
    return "The chosen agent is unavailable right now. Pick another one under “Send to”, or choose “No agent”, then retry.";
  }
  if (status === 502 || status === 503 || status === 504 || /_unavailable$/.test(code)) {
    return `The transcription service is unavailable right now (${message}). Your clip is kept here: retry in a moment.`;
  }
  return message ? sentence(message) : "The upload failed.";
}

async function sendClip(card, clip, target) {
  const form = new FormData();
  form.append("file", clip.blob, fileNameFor(clip.mimeType));
  if (target.agent_id) form.append("agent_id", target.agent_id);
  if (target.pipeline) form.append("pipeline", target.pipeline);
  live.uploadStarted(card);
  setStatus("Uploading…");
  const retry = () => sendClip(card, clip, target);
  let answer;
  try {
    answer = await upload("api/recordings", form, {
      onProgress: (fraction) => live.uploadProgress(card, fraction),
    }).promise;
  } catch (error) {
    const text = uploadFailureText(error);
    setStatus("");
    if (error.status === 429) {
      const seconds = error.retryAfterS ?? 30;
      const retryAt = Date.now() + seconds * 1000;
      live.uploadFailed(card, { text: "Not sent yet: rate limited. It is sent again by itself when the wait is over.", retry, retryAt });
      startRateLimit(seconds);
      setTimeout(() => {
        if (card.status === "unsent" && state.user) retry();
      }, seconds * 1000 + 250);
      return;
    }
    const permanent = ["upload_too_large", "audio_too_long", "unsupported_media_type"].includes(error.code) ||
      (error.status === 413);
    live.uploadFailed(card, { text: `Not sent: ${text}`, retry: permanent ? null : retry });
    if (error.status === 401) return; // the sign-in form is already showing
    const titles = {
      0: "Server unreachable",
      413: error.code === "audio_too_long" ? "Recording too long" : "Upload too large",
      415: "Unsupported audio",
    };
    const unavailable = error.code === "unknown_agent" || error.code === "agent_unavailable";
    showError(text, {
      title: unavailable ? "Agent unavailable" : titles[error.status] || (error.status >= 500 ? "Service unavailable" : "Upload failed"),
      code: error.code || "upload_failed",
      actions: permanent ? [] : [{ label: "Retry upload", onClick: () => { clearError(); retry(); } }],
    });
    return;
  }
  live.uploadSucceeded(card, answer);
  if (card.status === "transcribing") setStatus("Transcribing…");
}

// --- session ------------------------------------------------------------------------------

function enterApp(me) {
  clearTimeout(state.bootTimer);
  if (state.lastUserId && state.lastUserId !== me.user.id) live.clear();
  state.user = me.user;
  state.lastUserId = me.user.id;
  els.userName.textContent = me.user.name;
  showView("app");
  els.logout.hidden = Boolean(me.single_user);
  connection.start();
  agents.load().then(() => history.rerender());
  history.reload();
  setStatus("");
  if (!els.results.children.length) els.resultsEmpty.hidden = false;
}

function showLogin(message = "") {
  state.user = null;
  connection.stop();
  history.clear();
  showView("login");
  els.loginError.textContent = message;
  els.token.setAttribute("aria-invalid", message ? "true" : "false");
  els.token.focus();
}

function sessionEnded() {
  if (!state.user) return;
  showLogin("Your session has ended. Sign in again with your token.");
}

onUnauthorized(() => sessionEnded());

async function boot() {
  clearTimeout(state.bootTimer);
  showView("boot");
  let me;
  try {
    me = await request("api/me", { auth: false });
  } catch (error) {
    if (error.status === 401) {
      showLogin();
      return;
    }
    showView("unreachable");
    els.unreachableDetail.textContent =
      error.status === 0
        ? "Trying again every few seconds…"
        : `The server answered: ${error.message} (${error.status}). Trying again every few seconds…`;
    state.bootTimer = setTimeout(boot, 5000);
    return;
  }
  enterApp(me);
}

els.unreachableRetry.addEventListener("click", boot);

els.loginForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const token = els.token.value.trim();
  if (token.length < 8) {
    els.loginError.textContent = token ? "That token is too short: tokens have at least 8 characters." : "Enter your API token.";
    els.token.setAttribute("aria-invalid", "true");
    els.token.focus();
    return;
  }
  els.loginSubmit.disabled = true;
  els.loginSubmit.textContent = "Signing in…";
  els.loginError.textContent = "";
  try {
    const me = await request("api/login", { method: "POST", json: { token }, auth: false });
    els.token.value = "";
    els.token.setAttribute("aria-invalid", "false");
    enterApp(me);
    focusPtt();
  } catch (error) {
    els.token.setAttribute("aria-invalid", "true");
    els.loginError.textContent =
      error.status === 401
        ? "That token is not valid. Check it (no spaces, nothing missing) and try again."
        : error.status === 0
          ? "The server cannot be reached. Check your connection and try again."
          : error.status === 429
            ? `Too many attempts. Try again in ${describeDuration(error.retryAfterS ?? 30)}.`
            : error.message;
    els.token.focus();
  } finally {
    els.loginSubmit.disabled = false;
    els.loginSubmit.textContent = "Sign in";
  }
});

els.logout.addEventListener("click", async () => {
  els.logout.disabled = true;
  try {
    await request("api/logout", { method: "POST", auth: false });
  } catch {
    // Even if the server is gone, forget the page's state.
  } finally {
    els.logout.disabled = false;
  }
  live.clear();
  clearError();
  setStatus("");
  state.lastUserId = null;
  showLogin();
});

// A dropdown picked with the mouse keeps the focus, and Space would then open it instead of
// recording: give the focus back to the page (keyboard users keep theirs).
let lastInput = "pointer";
document.addEventListener("pointerdown", () => { lastInput = "pointer"; }, true);
document.addEventListener("keydown", () => { lastInput = "key"; }, true);
for (const select of [els.agent, $("#filter-agent")]) {
  select.addEventListener("change", () => {
    if (lastInput === "pointer") select.blur();
  });
}

window.addEventListener("beforeunload", (event) => {
  if (live.inFlight > 0 || document.body.classList.contains("is-recording")) {
    event.preventDefault();
    event.returnValue = ""; // "Leave the page? A clip is still uploading."
  }
});

boot();
