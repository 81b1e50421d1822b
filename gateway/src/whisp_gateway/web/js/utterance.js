// One press on the Realtime socket (stream.js owns the socket): its appends, its commit
// and what came back for it. Push-to-talk: one press is one item of the session.

const COMMIT_TIMEOUT_MS = 10_000; // no `committed` by then: the press is uploaded instead

/** Base64 of an ArrayBuffer, in slices (String.fromCharCode takes only so many arguments). */
function base64(buffer) {
  const bytes = new Uint8Array(buffer);
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

/** Why a streamed press did not go through: {code, message}, the server's when it said. */
export class StreamError extends Error {
  constructor(code, message) {
    super(message);
    this.name = "StreamError";
    this.code = code;
  }
}

/** The page's own reasons (not server codes): the socket went away, or never answered. */
export const StreamCode = Object.freeze({
  CLOSED: "stream_closed",
  TIMEOUT: "stream_timeout",
});

/**
 * One press on the socket. append() while held, then commit() (→ the item id) or clear().
 * Hooks, set by whoever drives the press: onItem(id) when the server first names the item,
 * onDelta(delta), onFail(StreamError) when it broke while held.
 */
export class Utterance {
  constructor(link, number, target) {
    this.link = link;
    this.number = number;
    this.target = target; // the agent route of the socket it runs on
    this.itemId = null;
    this.state = "open"; // open | committing | committed | failed | cleared
    this.error = null;
    this.sentBytes = 0;
    this.appends = 0;
    this.onItem = () => {};
    this.onDelta = () => {};
    this.onFail = () => {};
    this.committed = null; // {resolve, reject, timer} while the commit is on its way
  }

  /** One PCM16 chunk; false once the press is no longer streaming (failed, cleared). */
  append(pcm) {
    if (this.state !== "open") return false;
    this.appends += 1;
    const sent = this.link.send({
      type: "input_audio_buffer.append",
      event_id: `append_${this.number}_${this.appends}`,
      audio: base64(pcm),
    });
    if (sent) this.sentBytes += pcm.byteLength;
    return sent;
  }

  /** Release: resolves with the item id (= recording id); rejects with a StreamError. */
  commit() {
    if (this.state !== "open") {
      return Promise.reject(this.error || new StreamError(StreamCode.CLOSED, "the press is no longer streaming"));
    }
    return new Promise((resolve, reject) => {
      this.state = "committing";
      // A socket that stays silent this long cannot be trusted with the next press either.
      const timer = setTimeout(
        () => this.link.reset(new StreamError(StreamCode.TIMEOUT, "the server did not confirm the end of the recording")),
        COMMIT_TIMEOUT_MS,
      );
      this.committed = { resolve, reject, timer };
      this.link.queueCommit(this);
      if (!this.link.send({ type: "input_audio_buffer.commit", event_id: `commit_${this.number}` })) {
        this.fail(new StreamError(StreamCode.CLOSED, "the connection closed before the recording was sent"));
      }
    });
  }

  /** Cancel: the server drops what it has of this press. */
  clear() {
    if (this.state === "open" || this.state === "failed") {
      this.link.send({ type: "input_audio_buffer.clear", event_id: `clear_${this.number}` });
    }
    if (this.state === "open") this.state = "cleared";
    this.link.done(this);
  }

  /** The server named the item (a delta, or the commit's answer). */
  identify(itemId) {
    if (!itemId || this.itemId === itemId) return;
    this.itemId = itemId;
    this.onItem(itemId);
  }

  /** Broken: while held the press keeps its audio (onFail); a commit rejects. */
  fail(error) {
    if (this.state === "committed" || this.state === "cleared" || this.state === "failed") return;
    const wasCommitting = this.state === "committing";
    this.state = "failed";
    this.error = error;
    // Whatever the server may have started for this press is dropped, so the upload that
    // replaces it is the only recording (a no-op if the socket is gone: it cancels then).
    this.link.send({ type: "input_audio_buffer.clear", event_id: `clear_${this.number}` });
    this.link.done(this);
    if (wasCommitting && this.committed) {
      clearTimeout(this.committed.timer);
      this.committed.reject(error);
      this.committed = null;
    } else {
      this.onFail(error);
    }
  }

  /** `input_audio_buffer.committed` for this press. */
  confirm(itemId) {
    if (this.state !== "committing" || !this.committed) return;
    this.state = "committed";
    this.identify(itemId);
    clearTimeout(this.committed.timer);
    this.committed.resolve(itemId);
    this.committed = null;
  }
}
