// Who is signed in, and which of the page's views shows: loading, "can't reach the
// server", the token sign-in form, or the app itself.
//
// The session cookie is HttpOnly: the page never sees it and learns who it is from
// GET /api/me. A server that is not answering gets a retry every few seconds (it may just
// be starting); an ended session (any 401) brings the sign-in form back.

import { onUnauthorized, request } from "./api.js";
import { $, describeDuration } from "./ui.js";

const BOOT_RETRY_MS = 5000;
const MIN_TOKEN_LENGTH = 8;

/**
 * hooks: onSignedIn(me, {sameUser}) (the app view is showing; me = GET /api/me's answer),
 * onSignedOut({byLogout}) (the sign-in form is about to show).
 */
export function createSession({ onSignedIn, onSignedOut }) {
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
  };
  let user = null; // {id, name} while the app view shows
  let lastUserId = null; // whose results the page still holds
  let bootTimer = 0;

  function showView(name) {
    for (const [key, view] of Object.entries(els.views)) view.hidden = key !== name;
    els.views.boot.setAttribute("aria-busy", name === "boot" ? "true" : "false");
    const signedIn = name === "app";
    els.user.hidden = !signedIn;
    if (!signedIn) els.logout.hidden = true;
  }

  function enterApp(me) {
    clearTimeout(bootTimer);
    const sameUser = lastUserId === null || lastUserId === me.user.id;
    user = me.user;
    lastUserId = me.user.id;
    els.userName.textContent = me.user.name;
    showView("app");
    els.logout.hidden = Boolean(me.single_user);
    onSignedIn(me, { sameUser });
  }

  function showLogin(message = "", { byLogout = false } = {}) {
    user = null;
    onSignedOut({ byLogout });
    showView("login");
    els.loginError.textContent = message;
    els.token.setAttribute("aria-invalid", message ? "true" : "false");
    els.token.focus();
  }

  /** The server said 401 somewhere: ask for the token again (once). */
  function ended() {
    if (!user) return;
    showLogin("Your session has ended. Sign in again with your token.");
  }

  async function boot() {
    clearTimeout(bootTimer);
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
      bootTimer = setTimeout(boot, BOOT_RETRY_MS);
      return;
    }
    enterApp(me);
  }

  function loginErrorText(error) {
    if (error.status === 401) return "That token is not valid. Check it (no spaces, nothing missing) and try again.";
    if (error.status === 0) return "The server cannot be reached. Check your connection and try again.";
    if (error.status === 429) return `Too many attempts. Try again in ${describeDuration(error.retryAfterS ?? 30)}.`;
    return error.message;
  }

  els.unreachableRetry.addEventListener("click", boot);

  els.loginForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const token = els.token.value.trim();
    if (token.length < MIN_TOKEN_LENGTH) {
      els.loginError.textContent = token
        ? `That token is too short: tokens have at least ${MIN_TOKEN_LENGTH} characters.`
        : "Enter your API token.";
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
      $("#ptt").focus({ preventScroll: false });
    } catch (error) {
      els.token.setAttribute("aria-invalid", "true");
      els.loginError.textContent = loginErrorText(error);
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
    lastUserId = null; // the next person to sign in starts with an empty page
    showLogin("", { byLogout: true });
  });

  onUnauthorized(() => ended());

  return {
    boot,
    ended,
    get user() {
      return user;
    },
  };
}
