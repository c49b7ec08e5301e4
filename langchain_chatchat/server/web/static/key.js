// The API key of a server with `server.api_keys`: kept in this tab's sessionStorage (gone when
// the tab closes), sent as `Authorization: Bearer`, never put in a URL. Shared by /, /docs and
// /redoc. The LangServe playground cannot send headers; it gets a session cookie instead
// (POST /web/session, see server/web/session.py).
"use strict";

window.chatchatKey = (() => {
  const STORAGE = "chatchat.apiKey";

  function get() {
    return sessionStorage.getItem(STORAGE) || "";
  }

  function set(key) {
    if (key) sessionStorage.setItem(STORAGE, key);
    else sessionStorage.removeItem(STORAGE);
  }

  function headers(extra = {}) {
    const key = get();
    return key ? { ...extra, Authorization: `Bearer ${key}` } : { ...extra };
  }

  // Exchange the key for the playground's session cookie (a no-op without a key).
  async function openPlaygroundSession() {
    if (!get()) return true;
    const response = await fetch("/web/session", { method: "POST", headers: headers() });
    return response.ok;
  }

  async function forget() {
    if (get()) await fetch("/web/session", { method: "DELETE", headers: headers() });
    set("");
  }

  // A small "API key" form in `container`; `onSaved()` runs after a key was stored.
  function form(container, message, onSaved) {
    container.replaceChildren();
    const note = document.createElement("p");
    note.textContent = message;
    const input = document.createElement("input");
    input.type = "password";
    input.autocomplete = "off";
    input.placeholder = "API key (server.api_keys)";
    input.setAttribute("aria-label", "API key");
    input.id = "api-key";
    const save = document.createElement("button");
    save.type = "submit";
    save.textContent = "Use key";
    const element = document.createElement("form");
    element.className = "key-form";
    element.append(note, input, save);
    element.addEventListener("submit", async (event) => {
      event.preventDefault();
      set(input.value.trim());
      input.value = "";
      await onSaved();
    });
    container.append(element);
    input.focus();
  }

  // Fetch /openapi.json with the key and hand it to `render(spec)`; on a 401 the page's #key
  // element asks for a key and tries again. Shared by /docs and /redoc.
  async function loadSchema(render) {
    const container = document.getElementById("key");
    const response = await fetch("/openapi.json", { headers: headers() });
    if (response.status === 401) {
      form(container, "This server needs an API key to show its API.", () => loadSchema(render));
      return;
    }
    container.replaceChildren();
    render(await response.json());
  }

  return { get, set, headers, openPlaygroundSession, forget, form, loadSchema };
})();
