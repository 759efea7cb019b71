// The HTTP API (`/api/v1`): JSON in and out, bearer token, errors as {"error": {"code", "message"}}.

/** A refused API call. */
export class ApiError extends Error {
  /**
   * @param {number} status
   * @param {string} code
   * @param {string} message
   */
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/**
 * Calls the API; resolves with the parsed body (null for 204).
 * @param {string} method
 * @param {string} path under /api/v1, e.g. `/auth/login`
 * @param {string | null} token
 * @param {unknown} [body]
 * @returns {Promise<any>}
 */
export async function api(method, path, token, body) {
  /** @type {Record<string, string>} */
  const headers = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  const r = await fetch(`/api/v1${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (r.status === 204) return null;
  const text = await r.text();
  /** @type {any} */
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!r.ok) {
    const e = json?.error;
    throw new ApiError(r.status, e?.code ?? "http_error", e?.message ?? `HTTP ${r.status}`);
  }
  return json;
}

/**
 * Logs in; when the password must be changed first (set by an administrator, or expired),
 * `changePassword` is asked for a new one until the policy accepts it. The change keeps this
 * login's token (it logs out the user's other sessions).
 * @param {string} email
 * @param {string} password
 * @param {() => Promise<string>} changePassword resolves with the new password chosen by the user
 * @returns {Promise<{token: string, user: {id: number, role: string, name: string, email: string}}>}
 */
export async function login(email, password, changePassword) {
  const first = await api("POST", "/auth/login", null, { email, password });
  if (!first.must_change_password) return first;
  for (;;) {
    const next = await changePassword();
    try {
      await api("POST", "/auth/password", first.token, { old_password: password, new_password: next });
    } catch (e) {
      if (e instanceof ApiError && e.status === 422) {
        // The policy refused it: the form shows why and asks again.
        changePasswordError(e.message);
        continue;
      }
      throw e;
    }
    return { ...first, must_change_password: false };
  }
}

/** @type {(message: string) => void} */
let changePasswordError = () => {};

/**
 * Where the password form shows a refusal of the policy.
 * @param {(message: string) => void} f
 */
export function onPasswordRefused(f) {
  changePasswordError = f;
}
