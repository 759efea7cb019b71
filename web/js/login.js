// The login form and the forced or expired password change, shared by the console and the admin
// center. Both pages have the same #login and #change-password sections.

import { ApiError, login, onPasswordRefused } from "./api.js";
import { byId, el, showOnly } from "./dom.js";
import { t } from "./i18n.js";

/**
 * @typedef {{token: string, user: {id: number, role: string, name: string, email: string}}} Login
 */

/**
 * A labelled input.
 * @param {string} id
 * @param {string} label catalog key
 * @param {Record<string, string | boolean>} attrs
 */
function field(id, label, attrs) {
  return [el("label", { for: id, "data-i18n": label }, []), el("input", { id, required: true, ...attrs })];
}

/**
 * Draws the login and password-change panels at the start of `<main>` (once) and returns them.
 * @returns {HTMLElement[]}
 */
export function loginPanels() {
  const existing = document.getElementById("login");
  if (existing) return [existing, byId("change-password")];
  const login = el("section", { id: "login", class: "card narrow", hidden: true, "aria-labelledby": "login-heading" }, [
    el("h1", { id: "login-heading", "data-i18n": "login.heading" }, []),
    el("form", { id: "login-form" }, [
      ...field("email", "login.email", { type: "email", autocomplete: "username" }),
      ...field("password", "login.password", { type: "password", autocomplete: "current-password" }),
      el("button", { type: "submit", class: "primary wide", "data-i18n": "login.submit" }, []),
    ]),
    el("p", { id: "login-error", class: "error", role: "alert" }, []),
  ]);
  const change = el("section", { id: "change-password", class: "card narrow", hidden: true, "aria-labelledby": "change-heading" }, [
    el("h1", { id: "change-heading", "data-i18n": "password.heading" }, []),
    el("p", { "data-i18n": "password.intro" }, []),
    el("form", { id: "password-form" }, [
      ...field("new-password", "password.new", { type: "password", autocomplete: "new-password", minlength: "8" }),
      ...field("confirm-password", "password.confirm", { type: "password", autocomplete: "new-password", minlength: "8" }),
      el("button", { type: "submit", class: "primary wide", "data-i18n": "password.submit" }, []),
    ]),
    el("p", { id: "password-error", class: "error", role: "alert" }, []),
  ]);
  byId("main").prepend(login, change);
  return [login, change];
}

/**
 * Wires the login form.
 * @param {HTMLElement[]} panels the page's top-level panels (login, password change, the app)
 * @param {(role: string) => boolean} allowed whether users of this role may use the page
 * @param {string} refusedKey the message for users of other roles
 * @param {(session: Login) => Promise<void>} loggedIn opens the page for the user
 */
export function setupLogin(panels, allowed, refusedKey, loggedIn) {
  const loginPanel = byId("login");
  /** @returns {Promise<string>} the new password the user chose */
  const askNewPassword = () => {
    showOnly(panels, byId("change-password"));
    byId("new-password", HTMLInputElement).focus();
    return new Promise((resolve) => {
      const form = byId("password-form", HTMLFormElement);
      /** @param {SubmitEvent} e */
      const submit = (e) => {
        e.preventDefault();
        const a = byId("new-password", HTMLInputElement).value;
        const b = byId("confirm-password", HTMLInputElement).value;
        if (a !== b) {
          byId("password-error").textContent = t("password.mismatch");
          return;
        }
        form.removeEventListener("submit", submit);
        byId("password-error").textContent = "";
        resolve(a);
      };
      form.addEventListener("submit", submit);
    });
  };
  onPasswordRefused((message) => {
    byId("password-error").textContent = message;
  });
  byId("login-form", HTMLFormElement).addEventListener("submit", async (e) => {
    e.preventDefault();
    const error = byId("login-error");
    error.textContent = "";
    try {
      const session = await login(
        byId("email", HTMLInputElement).value.trim(),
        byId("password", HTMLInputElement).value,
        askNewPassword,
      );
      if (!allowed(session.user.role)) {
        showOnly(panels, loginPanel);
        error.textContent = t(refusedKey);
        return;
      }
      await loggedIn(session);
    } catch (err) {
      showOnly(panels, loginPanel);
      error.textContent =
        err instanceof ApiError && err.status === 401 ? t("login.wrong") : err instanceof Error ? err.message : String(err);
    }
  });
}

/**
 * Opens the page with the token kept in this tab (`storageKey`), or shows the login form.
 * @param {HTMLElement[]} panels
 * @param {string} storageKey
 * @param {(token: string) => Promise<void>} open
 */
export async function resumeOrLogin(panels, storageKey, open) {
  const token = sessionStorage.getItem(storageKey);
  if (token) {
    try {
      await open(token);
      return;
    } catch {
      sessionStorage.removeItem(storageKey);
    }
  }
  showOnly(panels, byId("login"));
  byId("email", HTMLInputElement).focus();
}
