// Calls to the server. With IRIS_API_TOKEN set, a 401 asks for the token once, keeps it in this tab
// (sessionStorage) and retries; an error answer becomes an Error whose message is "<status>: <detail>".

const TOKEN_KEY = "iris-api-token";

function askForToken() {
  const dialog = document.getElementById("token-dialog");
  const input = document.getElementById("token-input");
  input.value = "";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => {
      if (input.value) sessionStorage.setItem(TOKEN_KEY, input.value);
      resolve(Boolean(input.value));
    }, { once: true });
  });
}

/** fetch() with the token; resolves to the JSON body, rejects with the server's detail. */
export async function api(path, options = {}, retried = false) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const headers = { ...(options.headers || {}), ...(token ? { Authorization: `Bearer ${token}` } : {}) };
  const response = await fetch(path, { ...options, headers });
  if (response.status === 401 && !retried && await askForToken()) return api(path, options, true);
  let body = null;
  try { body = await response.json(); } catch (_) { /* not JSON */ }
  if (!response.ok) {
    let detail = body && body.detail !== undefined ? body.detail : response.statusText;
    if (typeof detail !== "string") detail = JSON.stringify(detail);
    throw new Error(`${response.status}: ${detail}`);
  }
  return body;
}

/** POST a form body (FormData). */
export const post = (path, body) => api(path, { method: "POST", body });

/** The URL of one of a run's artifacts (its `path` as GET /mlflow/run/{id} lists it). */
export const artifactUrl = (runId, path) =>
  `/mlflow/run/${encodeURIComponent(runId)}/artifacts/${path.split("/").map(encodeURIComponent).join("/")}`;
