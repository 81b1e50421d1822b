// WhisPTT web page: sign-in, push to talk, live results, history. This module only builds
// the pieces and wires them together; each piece is its own module:
//   session.js   sign-in and the page's views      talk.js     the button and the mic
//   upload.js    sending a clip                     live.js     "This session" (card.js: one card)
//   events.js    the live stream of snapshots       history.js  stored transcripts
//   snapshot.js  questions about a snapshot         render.js   agent answers
//   answering.js an answer while it is written
//   notice.js    status line and alert              ratelimit.js the 429 countdown
//   failures.js  error code → actionable text       agents.js   the "Send to" picker
//   stream.js    the Realtime socket (utterance.js: one press on it)
//   streamed.js  a press that streams               partial.js  words while held
//   pcm.js       the PCM tap (pcm-worklet.js, the audio thread)
//   settings.js  "My settings" (vocabulary.js: words, replacements.js: rules,
//                mydata.js: export and delete everything of mine)
//
// Streaming or upload, per press: a press streams (PCM over the Realtime socket, words under
// the button while held, commit on release) when the socket is open and ready for the chosen
// agent and the browser runs an AudioWorklet; otherwise it records with MediaRecorder and
// uploads, as it always did. A stream that breaks during a press uploads that press's audio.

import { AgentPicker } from "./agents.js";
import { Code } from "./codes.js";
import { LiveConnection } from "./events.js";
import { micFailureTitle } from "./failures.js";
import { History } from "./history.js";
import { LiveResults } from "./live.js";
import { Notice, NoticeCode, StatusLine } from "./notice.js";
import { PartialLine } from "./partial.js";
import { RateLimit } from "./ratelimit.js";
import { MAX_RECORDING_MS } from "./recorder.js";
import { createSession } from "./session.js";
import { SettingsPanel } from "./settings.js";
import { RealtimeLink } from "./stream.js";
import { Streamer } from "./streamed.js";
import { createTalk } from "./talk.js";
import { $, describeDuration, formatClock } from "./ui.js";
import { createUploader } from "./upload.js";

const ptt = $("#ptt");
const results = $("#results");
const resultsEmpty = $("#results-empty");
const status = new StatusLine($("#status"));
const notice = new Notice($("#error"));
const rateLimit = new RateLimit({ notice, status, button: ptt });

// data-stream on the button says whether the next press streams (ready) or uploads.
const link = new RealtimeLink({
  onState: (state) => {
    ptt.dataset.stream = state;
  },
});
ptt.dataset.stream = link.state;

const agents = new AgentPicker({
  select: $("#agent"),
  note: $("#agent-note"),
  retry: $("#agent-retry"),
  filter: $("#filter-agent"),
  onChange: (target) => link.setTarget(target), // the socket's URL carries the agent
});
const nameOf = (id, kind) => agents.nameOf(id, kind);

const settings = new SettingsPanel({
  dialog: $("#settings"),
  opener: $("#settings-open"),
  agents,
  userName: () => (session.user ? session.user.name : ""),
  // A new default is this browser's pick too; saving other settings leaves the picker alone.
  onSaved: (saved, previous) =>
    agents.setDefault(saved.default_agent, { saved: !previous || saved.default_agent !== previous.default_agent }),
  onDeleted: (_answer, text) => {
    agents.setDefault(null);
    live.clear();
    history.clear();
    history.reload();
    notice.clear();
    status.set(text);
  },
});

/** A result's news: failures go to the alert, everything else to the status line. */
function announce(text, { kind = "info", code = "", title = "", detail = "" } = {}) {
  if (kind !== "error") {
    status.set(text, detail);
    return;
  }
  status.set("");
  notice.show(text, { title, code: code || NoticeCode.RESULT_FAILED });
}

const live = new LiveResults(results, {
  nameOf,
  announce,
  onEmpty: (empty) => {
    resultsEmpty.hidden = !empty;
  },
  onFetched: (snapshot) => history.apply(snapshot),
  onHeld: (snapshot) => streamer.unknownSnapshot(snapshot),
});

const history = new History(
  {
    list: $("#history"),
    status: $("#history-status"),
    stale: $("#history-stale"),
    staleText: $("#history-stale-text"),
    staleShow: $("#history-stale-show"),
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
    announce: (text, kind) => (kind === "error" ? notice.show(text, { code: NoticeCode.DELETE_FAILED }) : status.set(text)),
    onDeleted: (id) => live.remove(id),
  },
);

// Both views take the same snapshot: neither derives anything from the other.
const connection = new LiveConnection({
  indicator: $("#connection"),
  onSnapshot: (transcript) => {
    live.apply(transcript);
    history.apply(transcript);
  },
  onPartial: (event) => streamer.partial(event),
  onAnswerDelta: (event) => live.answerDelta(event),
  onQueued: (event) => live.queued(event),
  onResync: () => {
    live.resync();
    history.resync();
  },
  onUnauthorized: () => session.ended(),
});

const session = createSession({
  onSignedIn: (me, { sameUser }) => {
    if (!sameUser) live.clear(); // another person's cards must not stay on screen
    connection.start();
    link.start(agents.current());
    agents.load().then(() => {
      history.rerender(); // agent names replace ids once known
      link.setTarget(agents.current()); // the remembered choice, now that it is known
      settings.agentsLoaded();
    });
    history.reload();
    settings.signedIn().then((mine) => mine && agents.setDefault(mine.default_agent));
    status.set("");
    if (!results.children.length) resultsEmpty.hidden = false;
  },
  onSignedOut: ({ byLogout }) => {
    connection.stop();
    link.stop();
    history.clear();
    settings.signedOut();
    agents.setDefault(null);
    if (byLogout) {
      live.clear();
      notice.clear();
      status.set("");
    }
  },
});

const sendClip = createUploader({ live, notice, status, rateLimit, isSignedIn: () => Boolean(session.user) });

/** A stream broke: say so with its code (the server's, or the page's StreamCode). */
function streamBroke(error, { released }) {
  if (error.code === Code.RATE_LIMITED) {
    const seconds = Number((/(\d+)\s*s\b/.exec(error.message || "") || [])[1]);
    rateLimit.start(seconds > 0 ? seconds : 30);
    return;
  }
  if (error.code === Code.QUOTA_EXCEEDED) {
    // The server's message says how much was used and when the quota resets (00:00 UTC).
    notice.show(error.message || "You have used all your audio for today.", {
      title: "Daily audio quota used up",
      code: Code.QUOTA_EXCEEDED,
      kind: "warn",
    });
    return;
  }
  const text = released
    ? "The live connection broke before the recording was confirmed, so it is uploaded instead: nothing is lost."
    : "The live connection broke: your words stop showing while you talk, but the recording goes on and is uploaded when you release.";
  notice.show(text, { title: "Live text interrupted", code: error.code || NoticeCode.GENERIC, kind: "hint" });
}

const streamer = new Streamer({
  link,
  line: new PartialLine($("#partial")),
  live,
  sendClip,
  hooks: {
    onStatus: (text) => status.set(text),
    onInterrupted: (error) => streamBroke(error, { released: false }),
    onFallback: (error) => streamBroke(error, { released: true }),
  },
});

// --- the talk button ------------------------------------------------------------------

function focusPtt() {
  ptt.focus({ preventScroll: false });
}

createTalk({
  button: ptt,
  level: $("#level"),
  timer: $("#timer"),
  hooks: {
    isBlocked: () => (rateLimit.secondsLeft() > 0 ? Code.RATE_LIMITED : null),
    onBlocked: () => rateLimit.show(),
    onStatus: (text) => status.set(text),
    onWarn: (text) => status.set(text),
    onMicError: (error) => {
      status.set("");
      notice.show(error.message, {
        title: micFailureTitle(error.kind),
        code: NoticeCode.mic(error.kind),
        actions: [{ label: "Try again", onClick: () => { notice.clear(); focusPtt(); } }],
      });
    },
    beginCapture: (mic) => streamer.begin(mic),
    onStart: () => {
      if (notice.kind !== "warn") notice.clear(); // a countdown or time-limit note stays
      status.set("Recording… release to send.");
      document.title = "● Recording – WhisPTT";
    },
    onCancelled: () => {
      document.title = "WhisPTT";
      status.set("Cancelled: nothing was sent.");
    },
    onTooShort: () => {
      document.title = "WhisPTT";
      status.set("");
      notice.show("That was too short to send. Hold the button (or Space) down while you talk, then release.", {
        title: "Hold to talk",
        code: NoticeCode.TOO_SHORT,
        kind: "hint",
      });
    },
    onClip: (clip) => {
      document.title = "WhisPTT";
      const target = clip.target || agents.current(); // a stream's: its socket's route
      if (clip.reason === "max") {
        notice.show(
          `Recordings stop at ${formatClock(MAX_RECORDING_MS)} (${describeDuration(MAX_RECORDING_MS / 1000)}); ` +
            "what you said so far is being sent. Hold the button again to go on.",
          { title: "Time limit reached", code: NoticeCode.TOO_LONG, kind: "warn" },
        );
      }
      if (clip.kind === "stream") {
        clip.send(target);
        return;
      }
      sendClip(live.addClip({ durationMs: clip.durationMs, target }), clip, target);
    },
  },
});

// --- page-wide behaviour ----------------------------------------------------------------

// A dropdown picked with the mouse keeps the focus, and Space would then open it instead of
// recording: give the focus back to the page (keyboard users keep theirs).
let lastInput = "pointer";
document.addEventListener("pointerdown", () => { lastInput = "pointer"; }, true);
document.addEventListener("keydown", () => { lastInput = "key"; }, true);
for (const select of [$("#agent"), $("#filter-agent")]) {
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

session.boot();
