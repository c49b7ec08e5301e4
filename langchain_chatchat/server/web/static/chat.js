// The home page: a chat over the server's own OpenAI-compatible API (/v1/models and streamed
// /v1/chat/completions). Model output is only ever set as text (textContent), never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const MODEL_STORAGE = "chatchat.model";
const MAX_TOOL_ROUNDS = 4;
const DEMO_TOOLS = [
  {
    type: "function",
    function: {
      name: "get_current_time",
      description: "The current date and time in the user's browser (ISO 8601).",
      parameters: { type: "object", properties: {}, required: [] },
    },
  },
];

let history = []; // OpenAI messages of this conversation
let pendingImages = []; // data: URLs to send with the next message
let controller = null; // aborts the request in flight

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function scrollDown() {
  const messages = $("messages");
  messages.scrollTop = messages.scrollHeight;
}

// ---- the API key and the models -------------------------------------------------------------

function showKeyForm(message) {
  const panel = $("key");
  panel.hidden = false;
  chatchatKey.form(panel, message, async () => {
    if (await loadModels()) {
      panel.hidden = true;
      await chatchatKey.openPlaygroundSession();
      followNext();
    }
  });
  const forget = element("button", "quiet", "Forget key");
  forget.type = "button";
  forget.addEventListener("click", async () => {
    await chatchatKey.forget();
    showKeyForm("Key forgotten.");
  });
  if (chatchatKey.get()) panel.querySelector("form").append(forget);
}

// After the key form, go back to the playground that sent the browser here (same origin only).
function followNext() {
  const next = new URLSearchParams(location.search).get("next") || "";
  if (/^\/[A-Za-z0-9][A-Za-z0-9._:-]*\/playground\/$/.test(next)) location.assign(next);
}

async function loadModels() {
  let response;
  try {
    response = await fetch("/v1/models", { headers: chatchatKey.headers() });
  } catch (error) {
    showStatus(`Cannot reach the server: ${error}`);
    return false;
  }
  if (response.status === 401) {
    showKeyForm(
      chatchatKey.get()
        ? "That key was refused. Enter one of the server's api_keys."
        : "This server needs an API key (one of server.api_keys).",
    );
    return false;
  }
  const models = (await response.json()).data || [];
  const select = $("model");
  select.replaceChildren(
    ...models.map((model) => {
      const option = element("option", "", model.id);
      option.value = model.id;
      option.title = `provider: ${model.owned_by}`;
      return option;
    }),
  );
  const remembered = sessionStorage.getItem(MODEL_STORAGE);
  if (models.some((model) => model.id === remembered)) select.value = remembered;
  updateLinks();
  return true;
}

function updateLinks() {
  const model = $("model").value;
  $("playground").href = model ? `/${encodeURIComponent(model)}/playground/` : "#";
}

function showStatus(text) {
  const note = element("div", "message error", text);
  $("messages").append(note);
  scrollDown();
}

// ---- composing ----------------------------------------------------------------------------

function userContent(text) {
  if (!pendingImages.length) return text;
  return [
    ...(text ? [{ type: "text", text }] : []),
    ...pendingImages.map((url) => ({ type: "image_url", image_url: { url } })),
  ];
}

function renderUser(text, images) {
  const bubble = element("div", "message user", text);
  for (const url of images) {
    const image = element("img");
    image.src = url;
    image.alt = "attached image";
    bubble.append(image);
  }
  $("messages").append(bubble);
}

function renderAttachments() {
  const box = $("attachments");
  box.replaceChildren();
  pendingImages.forEach((url, index) => {
    const image = element("img");
    image.src = url;
    image.alt = "image to send";
    const remove = element("button", "quiet", "remove");
    remove.type = "button";
    remove.addEventListener("click", () => {
      pendingImages.splice(index, 1);
      renderAttachments();
    });
    box.append(image, remove);
  });
}

// ---- one assistant turn, streamed -----------------------------------------------------------

class AssistantView {
  constructor(model) {
    this.bubble = element("div", "message assistant");
    this.reasoning = element("details", "reasoning");
    this.reasoning.open = true;
    this.reasoning.append(element("summary", "", "reasoning"));
    this.reasoningText = element("span");
    this.reasoning.append(this.reasoningText);
    this.reasoning.hidden = true;
    this.tools = element("div", "tool-calls");
    this.content = element("div", "content");
    this.meta = element("div", "meta", `${model} …`);
    this.bubble.append(this.reasoning, this.tools, this.content, this.meta);
    $("messages").append(this.bubble);
  }

  addReasoning(text) {
    this.reasoning.hidden = false;
    this.reasoningText.textContent += text;
  }

  addContent(text) {
    this.content.textContent += text;
  }

  showToolCalls(calls) {
    this.tools.replaceChildren(
      ...calls.map((call) =>
        element("div", "tool-call", `→ ${call.function.name}(${call.function.arguments})`),
      ),
    );
  }

  fail(message) {
    this.content.append(element("div", "error", message));
  }
}

// Reads an SSE body; yields each `data:` payload (a string) until `[DONE]`.
async function* sseEvents(body) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = event
        .split("\n")
        .filter((line) => line.startsWith("data:"))
        .map((line) => line.slice(5).replace(/^ /, ""))
        .join("\n");
      if (data === "[DONE]") return;
      if (data) yield data;
    }
  }
}

function requestBody(model, useTools) {
  const body = {
    model,
    messages: $("system").value.trim()
      ? [{ role: "system", content: $("system").value.trim() }, ...history]
      : history,
    stream: true,
    stream_options: { include_usage: true },
  };
  const temperature = $("temperature").value;
  const maxTokens = $("max-tokens").value;
  if (temperature !== "") body.temperature = Number(temperature);
  if (maxTokens !== "") body.max_tokens = Number(maxTokens);
  if (useTools) body.tools = DEMO_TOOLS;
  return body;
}

function describeUsage(model, usage, started, firstToken, finished) {
  const parts = [model];
  if (usage) {
    parts.push(`${usage.prompt_tokens} prompt + ${usage.completion_tokens} completion tokens`);
  }
  if (firstToken) parts.push(`first token ${Math.round(firstToken - started)} ms`);
  parts.push(`total ${((finished - started) / 1000).toFixed(2)} s`);
  if (usage && usage.completion_tokens && firstToken && finished > firstToken) {
    parts.push(`${(usage.completion_tokens / ((finished - firstToken) / 1000)).toFixed(1)} tokens/s`);
  }
  return parts.join(" · ");
}

async function errorMessage(response) {
  try {
    const body = await response.json();
    return `${response.status}: ${body.error?.message || JSON.stringify(body)}`;
  } catch {
    return `${response.status} ${response.statusText}`;
  }
}

// One request; returns the tool calls the model made (empty when it answered).
async function assistantTurn(model, useTools) {
  const view = new AssistantView(model);
  const started = performance.now();
  let firstToken = 0;
  let usage = null;
  let content = "";
  const calls = [];
  const response = await fetch("/v1/chat/completions", {
    method: "POST",
    headers: chatchatKey.headers({ "Content-Type": "application/json" }),
    body: JSON.stringify(requestBody(model, useTools)),
    signal: controller.signal,
  });
  if (!response.ok) {
    view.fail(await errorMessage(response));
    view.meta.textContent = model;
    if (response.status === 401) showKeyForm("This server needs an API key.");
    return [];
  }
  try {
    for await (const data of sseEvents(response.body)) {
      const chunk = JSON.parse(data);
      if (chunk.error) {
        view.fail(chunk.error.message || JSON.stringify(chunk.error));
        break;
      }
      if (chunk.usage) usage = chunk.usage;
      for (const choice of chunk.choices || []) {
        const delta = choice.delta || {};
        if (!firstToken && (delta.content || delta.reasoning_content || delta.tool_calls)) {
          firstToken = performance.now();
        }
        if (delta.reasoning_content) view.addReasoning(delta.reasoning_content);
        if (delta.content) {
          content += delta.content;
          view.addContent(delta.content);
        }
        for (const part of delta.tool_calls || []) {
          const call = (calls[part.index ?? calls.length] ||= {
            id: "",
            type: "function",
            function: { name: "", arguments: "" },
          });
          if (part.id) call.id = part.id;
          if (part.function?.name) call.function.name += part.function.name;
          if (part.function?.arguments) call.function.arguments += part.function.arguments;
          view.showToolCalls(calls.filter(Boolean));
        }
      }
      scrollDown();
    }
  } catch (error) {
    if (error.name !== "AbortError") throw error;
    view.fail("stopped");
  }
  view.meta.textContent = describeUsage(model, usage, started, firstToken, performance.now());
  const toolCalls = calls.filter(Boolean);
  history.push(
    toolCalls.length
      ? { role: "assistant", content: content || null, tool_calls: toolCalls }
      : { role: "assistant", content },
  );
  return toolCalls;
}

function runTool(call) {
  if (call.function.name === "get_current_time") return new Date().toISOString();
  return `error: unknown tool ${call.function.name}`;
}

async function send(event) {
  event.preventDefault();
  const text = $("prompt").value.trim();
  const model = $("model").value;
  if ((!text && !pendingImages.length) || !model || controller) return;
  $("hint")?.remove();
  renderUser(text, pendingImages);
  history.push({ role: "user", content: userContent(text) });
  $("prompt").value = "";
  pendingImages = [];
  renderAttachments();
  controller = new AbortController();
  $("send").hidden = true;
  $("stop").hidden = false;
  try {
    const useTools = $("tools").checked;
    for (let round = 0; round <= MAX_TOOL_ROUNDS; round++) {
      const calls = await assistantTurn(model, useTools);
      if (!calls.length || controller.signal.aborted) break;
      for (const call of calls) {
        const result = runTool(call);
        $("messages").append(element("div", "message tool", `${call.function.name} → ${result}`));
        history.push({ role: "tool", tool_call_id: call.id, content: result });
      }
    }
  } catch (error) {
    showStatus(`Request failed: ${error}`);
  } finally {
    controller = null;
    $("send").hidden = false;
    $("stop").hidden = true;
    $("prompt").focus();
  }
}

// ---- wiring -------------------------------------------------------------------------------

$("composer").addEventListener("submit", send);
$("prompt").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    $("composer").requestSubmit();
  }
});
$("stop").addEventListener("click", () => controller?.abort());
$("new-chat").addEventListener("click", () => {
  history = [];
  $("messages").replaceChildren();
});
$("model").addEventListener("change", () => {
  sessionStorage.setItem(MODEL_STORAGE, $("model").value);
  updateLinks();
});
$("image").addEventListener("change", async (event) => {
  for (const file of event.target.files) {
    try {
      pendingImages.push(await chatchatImages.read(file));
    } catch (error) {
      showStatus(error.message);
    }
  }
  event.target.value = "";
  renderAttachments();
});
$("key-button").addEventListener("click", () => {
  const panel = $("key");
  if (panel.hidden) showKeyForm("The server's API key, kept in this tab only.");
  else panel.hidden = true;
});
// The playground cannot send the key; it gets a session cookie right before it opens.
$("playground").addEventListener("click", async (event) => {
  event.preventDefault();
  if ($("model").value && (await chatchatKey.openPlaygroundSession())) {
    location.assign($("playground").href);
  }
});
// /metrics is plain text behind the key: open it through fetch when a key is set.
$("metrics").addEventListener("click", async (event) => {
  if (!chatchatKey.get()) return;
  event.preventDefault();
  const response = await fetch("/metrics", { headers: chatchatKey.headers() });
  const text = response.ok ? await response.text() : await errorMessage(response);
  const view = element("pre", "message tool", text);
  $("messages").append(view);
  scrollDown();
});

loadModels().then((ok) => {
  if (ok && chatchatKey.get()) chatchatKey.openPlaygroundSession().then(followNext);
});
