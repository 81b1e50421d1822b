// A transcript snapshot: the recording as the server stored it (GET /api/transcripts/{id}
// and every `transcript.updated` event carry the same object). The live results and the
// history both draw straight from it; these helpers only answer questions about display
// (which one is newer, is an answer still expected, which agent to name), never rebuild
// state from pieces.

/** A value that has the fields every snapshot has. */
export function isSnapshot(value) {
  return Boolean(
    value && typeof value === "object" && typeof value.recording_id === "string" && value.recording_id &&
      typeof value.status === "string",
  );
}

function time(value) {
  const at = Date.parse(value);
  return Number.isNaN(at) ? 0 : at;
}

/**
 * True when `incoming` is an older state than `shown`. Snapshots come from two places (the
 * live stream and the watchdog's GET) and the gateway stores the three source streams
 * concurrently, so one can overtake another: the stored `updated_at` only grows and answers
 * are only ever added, so a snapshot behind on either is stale and must not undo what the
 * screen already shows.
 */
export function isOlder(incoming, shown) {
  if (!shown) return false;
  if (time(incoming.updated_at) < time(shown.updated_at)) return true;
  return (incoming.answers || []).length < (shown.answers || []).length;
}

export function wantsAgent(t) {
  return Boolean(t.agent_id || t.pipeline);
}

/** Transcribed into words, an agent was asked, and no answer (or failure) is in yet. */
export function awaitsAnswer(t) {
  return t.status === "done" && Boolean((t.text || "").trim()) && wantsAgent(t) && !(t.answers || []).length;
}

/** The display name of the agent or pipeline the recording was sent to ("" for none). */
export function targetName(t, nameOf) {
  if (t.pipeline) return nameOf(t.pipeline, "pipeline");
  if (t.agent_id) return nameOf(t.agent_id, "agent");
  return "";
}

/** The history's order (the server's): newest `created_at` first, then `recording_id`. */
export function comesBefore(a, b) {
  const at = time(a.created_at);
  const bt = time(b.created_at);
  if (at !== bt) return at > bt;
  return a.recording_id > b.recording_id;
}
