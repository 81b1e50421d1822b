// Sending a released clip: POST /api/recordings with progress on its card, and every
// failure turned into something the person can do (retry, wait, pick another agent).
//
// The clip stays in memory with its card until it was sent, so "Retry upload" sends the
// same audio again; after a 429 the card resends it by itself once the wait is over.

import { upload } from "./api.js";
import { Code } from "./codes.js";
import { uploadFailure } from "./failures.js";
import { NoticeCode } from "./notice.js";
import { fileNameFor } from "./recorder.js";

const RATE_LIMIT_DEFAULT_S = 30; // when a 429 comes without Retry-After

/**
 * live: LiveResults; notice: Notice; status: StatusLine; rateLimit: RateLimit;
 * isSignedIn(): false once the person signed out (a pending resend then stays unsent).
 * Returns sendClip(card, clip, target).
 */
export function createUploader({ live, notice, status, rateLimit, isSignedIn }) {
  async function sendClip(card, clip, target) {
    const form = new FormData();
    form.append("file", clip.blob, fileNameFor(clip.mimeType));
    if (target.agent_id) form.append("agent_id", target.agent_id);
    if (target.pipeline) form.append("pipeline", target.pipeline);
    live.uploadStarted(card);
    status.set("Uploading…");
    const retry = () => sendClip(card, clip, target);
    let answer;
    try {
      answer = await upload("api/recordings", form, {
        onProgress: (fraction) => live.uploadProgress(card, fraction),
      }).promise;
    } catch (error) {
      failed(card, error, retry);
      return;
    }
    live.uploadSucceeded(card, answer);
    if (card.status === "transcribing") status.set("Transcribing…");
  }

  function failed(card, error, retry) {
    status.set("");
    if (error.code === Code.RATE_LIMITED || (error.status === 429 && !error.code)) {
      const seconds = error.retryAfterS ?? RATE_LIMIT_DEFAULT_S;
      live.uploadFailed(card, {
        text: "Not sent yet: rate limited. It is sent again by itself when the wait is over.",
        retry,
        retryAt: Date.now() + seconds * 1000,
      });
      rateLimit.start(seconds);
      setTimeout(() => {
        if (card.status === "unsent" && isSignedIn()) retry();
      }, seconds * 1000 + 250);
      return;
    }
    const { text, title, permanent } = uploadFailure(error);
    live.uploadFailed(card, { text: `Not sent: ${text}`, retry: permanent ? null : retry });
    if (error.status === 401) return; // the sign-in form is already showing
    notice.show(text, {
      title,
      code: error.code || NoticeCode.UPLOAD_FAILED,
      actions: permanent ? [] : [{ label: "Retry upload", onClick: () => { notice.clear(); retry(); } }],
    });
  }

  return sendClip;
}
