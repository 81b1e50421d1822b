// Talking to the gateway: JSON requests, multipart uploads with progress, one error shape.
//
// Every server error is JSON {code, message, retryable} with the right status (the codes
// are `Code` in codes.js); a 429 carries Retry-After. A failure that never got a server
// answer gets one of the page's own `ClientCode`s instead, so nobody mistakes it for a
// server's verdict. URLs are relative ("api/…") so the page also works behind a path prefix.

/**
 * Codes the page makes up itself, for failures no server described (no answer at all, an
 * answer we cannot read). They are never server codes: branch on `Code.X` for those.
 */
export const ClientCode = Object.freeze({
  NETWORK: "network", // nothing reached the server, or nothing came back (status 0)
  BAD_RESPONSE: "bad_response", // a 2xx we cannot parse
  httpStatus: (status) => `http_${status}`, // an error body without a code (a proxy's page)
});

export class ApiError extends Error {
  constructor(status, code, message, { retryAfterS = null, retryable = null } = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.retryAfterS = retryAfterS;
    this.retryable = retryable; // the server's word, when it gave one
  }
}

let unauthorizedHandler = null;

/** Called with the ApiError whenever an authenticated call answers 401 (session gone). */
export function onUnauthorized(handler) {
  unauthorizedHandler = handler;
}

/** Seconds to wait from a Retry-After header (delta-seconds or an HTTP date). */
export function parseRetryAfter(value, now = Date.now()) {
  if (value == null || value === "") return null;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, Math.ceil(seconds));
  const at = Date.parse(value);
  if (!Number.isNaN(at)) return Math.max(0, Math.ceil((at - now) / 1000));
  return null;
}

function errorFromBody(status, text, retryAfterHeader, statusText = "") {
  let code = ClientCode.httpStatus(status);
  let message = statusText || `The server answered ${status}.`;
  let retryable = null;
  try {
    const body = JSON.parse(text);
    if (body && typeof body.code === "string") code = body.code;
    if (body && typeof body.message === "string") message = body.message;
    else if (body && typeof body.detail === "string") message = body.detail; // not one of ours
    if (body && typeof body.retryable === "boolean") retryable = body.retryable;
  } catch {
    // Not JSON (a proxy's error page, say): keep the generic message.
  }
  return new ApiError(status, code, message, { retryAfterS: parseRetryAfter(retryAfterHeader), retryable });
}

function networkError() {
  return new ApiError(0, ClientCode.NETWORK, "The server cannot be reached.");
}

function report(error, auth) {
  if (auth && error.status === 401 && unauthorizedHandler) unauthorizedHandler(error);
  return error;
}

/**
 * fetch() a JSON API route. Options: method, json (request body), signal, auth (default
 * true: a 401 also notifies the onUnauthorized handler).
 */
export async function request(path, { method = "GET", json, signal, auth = true } = {}) {
  const headers = { Accept: "application/json" };
  if (json !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: json === undefined ? undefined : JSON.stringify(json),
      credentials: "same-origin",
      cache: "no-store",
      signal,
    });
  } catch (error) {
    if (error && error.name === "AbortError") throw error;
    throw networkError();
  }
  if (!response.ok) {
    const text = await response.text().catch(() => "");
    throw report(
      errorFromBody(response.status, text, response.headers.get("Retry-After"), response.statusText),
      auth,
    );
  }
  if (response.status === 204) return null;
  const type = response.headers.get("Content-Type") || "";
  return type.includes("json") ? response.json() : response.text();
}

/**
 * POST a FormData with upload progress (fetch cannot report it). Resolves with the JSON
 * answer; rejects with an ApiError. Returns {promise, abort}.
 */
export function upload(path, form, { onProgress } = {}) {
  const xhr = new XMLHttpRequest();
  const promise = new Promise((resolve, reject) => {
    xhr.open("POST", path);
    xhr.withCredentials = true;
    xhr.setRequestHeader("Accept", "application/json");
    if (onProgress) {
      xhr.upload.addEventListener("progress", (event) => {
        if (event.lengthComputable && event.total > 0) onProgress(event.loaded / event.total);
      });
    }
    xhr.addEventListener("load", () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        try {
          resolve(JSON.parse(xhr.responseText || "null"));
        } catch {
          reject(new ApiError(xhr.status, ClientCode.BAD_RESPONSE, "The server sent an answer we cannot read."));
        }
        return;
      }
      if (xhr.status === 0) {
        reject(networkError());
        return;
      }
      reject(
        report(
          errorFromBody(xhr.status, xhr.responseText, xhr.getResponseHeader("Retry-After"), xhr.statusText),
          true,
        ),
      );
    });
    xhr.addEventListener("error", () => reject(networkError()));
    xhr.addEventListener("timeout", () => reject(networkError()));
    xhr.addEventListener("abort", () => reject(new DOMException("Upload aborted", "AbortError")));
    xhr.send(form);
  });
  return { promise, abort: () => xhr.abort() };
}
