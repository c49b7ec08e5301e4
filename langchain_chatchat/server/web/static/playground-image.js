// "Attach image" for the LangServe playground of a chat model (added to its page by
// server/web/playground.py). The playground is LangServe's bundled app, kept as built: this
// script puts its control beside the app, and the attached image into the last human message of
// each request the app sends to this model's /invoke, /batch, /stream, /stream_log or
// /stream_events. Every other request, and every request while nothing is attached, goes out
// as the app made it.
"use strict";

(() => {
  const ENDPOINTS = new Set(["invoke", "batch", "stream", "stream_log", "stream_events"]);
  // The model's routes sit beside its playground, as the app itself computes them.
  const routes = `${location.pathname.slice(0, location.pathname.lastIndexOf("/playground/"))}/`;
  const maxBytes = chatchatImages.limit(Number(document.currentScript.dataset.maxBody));
  const sendOriginal = window.fetch;
  let attached = null; // { url, name, size } of the image to send
  let view = null; // the control's elements, once the page is parsed

  // ---- the image in a request body --------------------------------------------------------

  function imagePart() {
    return { type: "image_url", image_url: { url: attached.url } };
  }

  function withImage(content) {
    if (typeof content === "string") {
      return content ? [{ type: "text", text: content }, imagePart()] : [imagePart()];
    }
    return Array.isArray(content) ? [...content, imagePart()] : [imagePart()];
  }

  // A message as LangServe takes it: a dict with `type` ("human", ...) or `role` ("user", ...),
  // a [role, content] pair, or a bare string (a human message).
  function isHuman(message) {
    if (typeof message === "string") return true;
    if (Array.isArray(message)) return message[0] === "human" || message[0] === "user";
    return (
      message !== null &&
      typeof message === "object" &&
      (message.type === "human" || message.role === "user" || message.role === "human")
    );
  }

  function humanWithImage(message) {
    if (typeof message === "string") return { type: "human", content: withImage(message) };
    if (Array.isArray(message)) return { type: "human", content: withImage(message[1]) };
    return { ...message, content: withImage(message.content) };
  }

  function messagesWithImage(messages) {
    const last = messages.findLastIndex(isHuman);
    if (last < 0) return [...messages, { type: "human", content: withImage("") }];
    return messages.map((message, index) => (index === last ? humanWithImage(message) : message));
  }

  // A chat model's input: a string, a list of messages, or a prompt value ({messages} or {text}).
  function inputWithImage(input) {
    if (typeof input === "string") return [{ type: "human", content: withImage(input) }];
    if (Array.isArray(input)) return messagesWithImage(input);
    if (input !== null && typeof input === "object") {
      if (Array.isArray(input.messages)) {
        return { ...input, messages: messagesWithImage(input.messages) };
      }
      if (typeof input.text === "string") return [{ type: "human", content: withImage(input.text) }];
    }
    return input; // not a chat input: the server says what is wrong with it
  }

  function bodyWithImage(text, endpoint) {
    let body;
    try {
      body = JSON.parse(text);
    } catch {
      return null;
    }
    if (body === null || typeof body !== "object") return null;
    if (endpoint === "batch") {
      if (!Array.isArray(body.inputs)) return null;
      body.inputs = body.inputs.map(inputWithImage);
    } else {
      if (!("input" in body)) return null;
      body.input = inputWithImage(body.input);
    }
    return JSON.stringify(body);
  }

  // The endpoint a call to `fetch(input, init)` posts to, if it is one of this model's runs.
  function runEndpoint(input, init) {
    if (typeof input !== "string" && !(input instanceof URL)) return null;
    if (!init || typeof init.body !== "string" || String(init.method).toUpperCase() !== "POST") {
      return null;
    }
    const url = new URL(input, location.href);
    if (url.origin !== location.origin || !url.pathname.startsWith(routes)) return null;
    const endpoint = url.pathname.slice(routes.length);
    return ENDPOINTS.has(endpoint) ? endpoint : null;
  }

  window.fetch = function fetch(input, init) {
    const endpoint = attached && runEndpoint(input, init);
    const body = endpoint && bodyWithImage(init.body, endpoint);
    if (!body) return sendOriginal(input, init);
    showStatus(`${attached.name} sent with the last human message.`);
    const response = sendOriginal(input, { ...init, body });
    // Runs before the app's own handlers (registered first), so the body is still unread.
    response.then(
      (reply) => reportRefusal(reply.clone()),
      () => {},
    );
    return response;
  };

  // The app shows neither an error status's message nor a stream's `event: error`; for a run
  // that carries the image (which a text-only model refuses), this page does.
  async function reportRefusal(reply) {
    try {
      const problem = reply.ok ? await streamedError(reply) : await replyError(reply);
      if (problem) showError(`The server refused the request with the image. ${problem}`);
    } catch {
      // the app stopped the run
    }
  }

  async function replyError(reply) {
    try {
      const { error } = await reply.json();
      if (error?.message) return `${reply.status}: ${error.message}`;
    } catch {
      // not JSON: the status says it
    }
    return `${reply.status} ${reply.statusText}`;
  }

  // The message of a server-sent `event: error` in `reply`, or null at the stream's end.
  async function streamedError(reply) {
    if (!(reply.headers.get("content-type") || "").startsWith("text/event-stream")) {
      await reply.body?.cancel();
      return null;
    }
    const reader = reply.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return null;
      buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const lines = buffer.slice(0, end).split("\n");
        buffer = buffer.slice(end + 2);
        if (!lines.includes("event: error")) continue;
        const data = lines
          .filter((line) => line.startsWith("data:"))
          .map((line) => line.slice(5).trim())
          .join("\n");
        try {
          const event = JSON.parse(data);
          return `${event.status_code}: ${event.message}`;
        } catch {
          return data;
        }
      }
    }
  }

  // ---- the control --------------------------------------------------------------------------

  function element(tag, properties = {}, ...children) {
    const node = Object.assign(document.createElement(tag), properties);
    node.append(...children);
    return node;
  }

  function showStatus(text) {
    view.error.textContent = "";
    view.status.textContent = text;
  }

  function showError(text) {
    view.status.textContent = "";
    view.error.textContent = text;
  }

  function render() {
    view.preview.hidden = !attached;
    if (!attached) return;
    view.image.src = attached.url;
    view.image.alt = `Attached image ${attached.name}`;
    view.caption.textContent = `${attached.name} · ${chatchatImages.size(attached.size)}`;
  }

  async function attach(file) {
    try {
      attached = { url: await chatchatImages.read(file, maxBytes), name: file.name, size: file.size };
      showStatus(`${file.name} will be sent with the last human message.`);
    } catch (error) {
      showError(error.message);
    }
    render();
  }

  function mount() {
    const input = element("input", {
      type: "file",
      id: "chatchat-image-input",
      accept: chatchatImages.ACCEPT,
      hidden: true,
    });
    const choose = element("button", { type: "button", id: "chatchat-image-attach" }, "Attach image");
    choose.setAttribute("aria-describedby", "chatchat-image-hint");
    const hint = element(
      "span",
      { id: "chatchat-image-hint", className: "hint" },
      `PNG, JPEG, WebP or GIF up to ${chatchatImages.size(maxBytes)}, sent with the last human` +
        " message of each run (for models that take images).",
    );
    const image = element("img", { id: "chatchat-image-preview" });
    const caption = element("figcaption");
    const remove = element("button", { type: "button", id: "chatchat-image-remove" }, "Remove image");
    const preview = element("figure", { hidden: true }, image, caption, remove);
    const status = element("p", { id: "chatchat-image-status" });
    status.setAttribute("role", "status");
    const error = element("p", { id: "chatchat-image-error", className: "error" });
    error.setAttribute("role", "alert");
    const section = element("section", { id: "chatchat-image" }, choose, input, hint, preview);
    section.setAttribute("aria-label", "Image attachment");
    section.append(status, error);
    view = { preview, image, caption, status, error };

    choose.addEventListener("click", () => input.click());
    input.addEventListener("change", async () => {
      const [file] = input.files;
      input.value = "";
      if (file) await attach(file);
    });
    remove.addEventListener("click", () => {
      attached = null;
      showStatus("Image removed.");
      render();
      choose.focus();
    });
    document.body.prepend(section);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", mount);
  else mount();
})();
