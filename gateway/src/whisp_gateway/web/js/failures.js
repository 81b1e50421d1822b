// What to tell a person when something failed: one place that turns an error code into
// text they can act on (what happened, what to do next).
//
// Server codes are only ever named as `Code.X` (codes.js is generated from the servers'
// enum, so a renamed or removed code breaks here loudly instead of silently never
// matching). The page's own failures (no answer at all, the microphone) are in the
// "client-side" section at the end and are not server codes.

import { ClientCode } from "./api.js";
import { Code } from "./codes.js";
import { sentence } from "./ui.js";

// --- agent answers (an Answer's error_code) ---------------------------------------------

/** The agent the person chose is not there: another choice under "Send to" helps. */
const AGENT_NOT_SET_UP = new Set([Code.UNKNOWN_AGENT, Code.AGENT_CONFIG_ERROR]);

/** Text for a failed agent run; `name` is the agent or pipeline's display name. */
export function agentFailureText(code, message, name) {
  const who = name ? `“${name}”` : "The agent";
  if (AGENT_NOT_SET_UP.has(code)) {
    return `${name ? `The agent ${who}` : "This agent"} is unavailable right now. Pick another one under “Send to”, or try again later.`;
  }
  if (code === Code.AGENT_UNAVAILABLE) {
    // The agent service itself is unreachable: every agent is, so another pick won't help.
    return "The agent service cannot be reached right now, so no agent could answer. Your transcript is kept: try again in a moment.";
  }
  if (code === Code.UPSTREAM_RATE_LIMITED) return `${who} is busy right now (rate limited). Try again in a little while.`;
  if (code === Code.UPSTREAM_UNAVAILABLE) return `${who} cannot reach its language model right now. Try again later.`;
  if (code === Code.INPUT_TOO_LONG) return `${message ? sentence(message) : `That was too long for ${who}.`} Try a shorter clip.`;
  if (code === Code.GUARDRAIL_TRIPPED) return message ? sentence(message) : `${who} declined to answer this.`;
  return message ? sentence(message) : `${who} could not answer.`;
}

/** A title for the page's alert when an agent failed ("" when the text says it all). */
export function agentFailureTitle(code) {
  if (AGENT_NOT_SET_UP.has(code)) return "Agent unavailable";
  if (code === Code.AGENT_UNAVAILABLE) return "Agent service unreachable";
  return "";
}

// --- transcription (a transcript's error_code) ------------------------------------------

export function transcriptionFailureText(code, message) {
  if (code === Code.AUDIO_TOO_LONG) return `${sentence(message || "The recording is too long")} Record a shorter clip.`;
  if (code === Code.UNDECODABLE_AUDIO) return `${sentence(message || "The audio could not be decoded")} Try recording again.`;
  if (code === Code.GAVE_UP) return `${sentence(message || "The transcription kept failing")} Try recording again in a moment.`;
  return message ? sentence(message) : "The transcription failed. Try recording again.";
}

// --- uploads (an ApiError from POST /api/recordings) ------------------------------------

const TOO_LARGE = new Set([Code.UPLOAD_TOO_LARGE, Code.FILE_TOO_LARGE, Code.AUDIO_TOO_LARGE]);
/** The service behind the gateway is down or restarting: the same clip goes through later. */
const SERVICE_DOWN = new Set([
  Code.UNAVAILABLE,
  Code.AUDIO_UNAVAILABLE,
  Code.UPSTREAM_UNAVAILABLE,
  Code.DEVICE_UNAVAILABLE,
  Code.GATEWAY_STOPPING,
]);

/**
 * What to say about a failed upload: {text, title, permanent}. `permanent`: sending the
 * same clip again cannot work (too large, too long, a format the server cannot read).
 */
export function uploadFailure(error) {
  const { status, code, message } = error;
  if (status === 0 || code === ClientCode.NETWORK) {
    return { title: "Server unreachable", text: "The server cannot be reached. Check your connection, then retry.", permanent: false };
  }
  if (status === 401) return { title: "Signed out", text: "Your session has ended. Sign in again, then retry.", permanent: false };
  if (code === Code.QUOTA_EXCEEDED) {
    // The server's message says how much was used and when the quota resets (00:00 UTC).
    return {
      title: "Daily audio quota used up",
      text: `${sentence(message || "You have used all your audio for today")} Your clip is kept here: send it again after the reset.`,
      permanent: false,
    };
  }
  if (code === Code.AUDIO_TOO_LONG) {
    return { title: "Recording too long", text: `${sentence(message)} Record a shorter clip.`, permanent: true };
  }
  if (TOO_LARGE.has(code) || status === 413) {
    return {
      title: "Upload too large",
      text: `The recording is too large to upload: ${sentence(message, false)} Record a shorter clip.`,
      permanent: true,
    };
  }
  if (code === Code.UNSUPPORTED_MEDIA_TYPE || status === 415) {
    return {
      title: "Unsupported audio",
      text: "The server cannot read the audio this browser recorded. Try another browser.",
      permanent: true,
    };
  }
  if (code === Code.UNKNOWN_AGENT || code === Code.AGENT_CONFIG_ERROR) {
    return {
      title: "Agent unavailable",
      text: "The chosen agent is unavailable right now. Pick another one under “Send to”, or choose “No agent”, then retry.",
      permanent: false,
    };
  }
  if (code === Code.AGENT_UNAVAILABLE) {
    return {
      title: "Agent service unreachable",
      text: "The agent service cannot be reached right now. Retry in a moment, or choose “No agent” under “Send to” to get the transcript only.",
      permanent: false,
    };
  }
  if (SERVICE_DOWN.has(code) || status === 502 || status === 503 || status === 504) {
    return {
      title: "Service unavailable",
      text: `The transcription service is unavailable right now (${message}). Your clip is kept here: retry in a moment.`,
      permanent: false,
    };
  }
  return {
    title: status >= 500 ? "Service unavailable" : "Upload failed",
    text: message ? sentence(message) : "The upload failed.",
    permanent: false,
  };
}

// --- client-side: the microphone (MicError.kind from recorder.js; not server codes) -----

const MIC_TITLES = {
  denied: "Microphone blocked",
  missing: "No microphone found",
  busy: "Microphone unavailable",
  insecure: "Microphone needs a secure page",
  unsupported: "Recording not supported",
};

export function micFailureTitle(kind) {
  return MIC_TITLES[kind] || "Microphone problem";
}
