// The playground: price, create, watch and play videos through the public API, nothing else.
// Plain ES module, no build step, no framework; every call is fetch() to this origin.

const TOKEN_KEY = "vidgen.token";
const TERMINAL = new Set(["completed", "failed", "canceled"]);
const CANCELABLE = new Set(["pending", "queued", "processing"]);
const QUOTE_DEBOUNCE_MS = 300;
// The server allows 5 open event streams per user (429 too_many_streams past that).
const MAX_FOLLOWS = 4;
// Stand-ins for quoting before the person has typed a prompt or chosen an image: a price
// depends on neither (a 1x1 PNG, as a data: URI the API accepts as `image_url`).
const QUOTE_PROMPT = "price check";
const QUOTE_IMAGE =
  "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=";

const $ = (id) => document.getElementById(id);
const el = (tag, props = {}, ...children) => {
  const node = Object.assign(document.createElement(tag), props);
  append(node, ...children);
  return node;
};

/** Appends the children that exist (DOM append would write `null` as text). */
function append(node, ...children) {
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}

// -- state ----------------------------------------------------------------------------------

let token = null;
let models = new Map(); // id -> the model as GET /api/models describes it
let upload = null; // the current image: POST /api/uploads' answer
let uploading = null; // the upload in flight, which a create waits for
let quoteTimer = null;
let quoteAbort = null;
let creating = false;
// The submit being sent: its body and Idempotency-Key. A retry of the same body after a
// network failure (the answer lost, maybe not the request) sends the same key, so it is
// charged once; any answer from the server ends it.
let pendingCreate = null;
const videos = new Map(); // id -> the latest state seen
const follows = new Map(); // id -> AbortController of its event stream
const stalled = new Set(); // ids whose stream failed: followed again only when selected
let selectedId = null;
let playerRefreshedFor = null;

// -- the API --------------------------------------------------------------------------------

class Problem extends Error {
  constructor(fields) {
    super(fields.detail || fields.title);
    Object.assign(this, fields);
  }
}

async function problemOf(response) {
  const requestId = response.headers.get("X-Request-Id");
  const retryAfter = response.headers.get("Retry-After");
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!body || typeof body !== "object") {
    body = { title: `HTTP ${response.status}`, code: `http_${response.status}`, detail: "" };
  }
  return new Problem({
    status: response.status,
    title: body.title || `HTTP ${response.status}`,
    code: body.code || `http_${response.status}`,
    detail: body.detail || "",
    errors: Array.isArray(body.errors) ? body.errors : [],
    request_id: body.request_id || requestId,
    retry_after: retryAfter,
  });
}

function networkProblem(error) {
  return new Problem({
    status: 0,
    title: "The service could not be reached",
    code: "network_error",
    detail: String(error.message || error),
    errors: [],
    request_id: null,
    network: true,
  });
}

/** One call to the API: JSON (or a form) in, JSON out; a problem+json answer throws Problem. */
async function api(path, { method = "GET", json, form, headers = {}, signal } = {}) {
  const init = {
    method,
    headers: { Accept: "application/json", Authorization: `Bearer ${token}`, ...headers },
    signal,
    cache: "no-store",
  };
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  } else if (form !== undefined) {
    init.body = form;
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw networkProblem(error);
  }
  if (!response.ok) {
    const problem = await problemOf(response);
    if (problem.status === 401) signOut(problem);
    throw problem;
  }
  return response.status === 204 ? null : response.json();
}

/** Shows a problem in words, with its code and request id, in a role="alert" region. */
function showProblem(region, problem) {
  region.replaceChildren();
  if (!problem) return;
  if (!(problem instanceof Problem)) {
    problem = new Problem({
      title: "Something went wrong in this page",
      code: "client_error",
      detail: String(problem && problem.message ? problem.message : problem),
      errors: [],
    });
  }
  region.append(
    el("p", {}, el("strong", { textContent: problem.title }), problem.detail ? `: ${problem.detail}` : ""),
  );
  const fields = (problem.errors || []).filter((e) => e && e.msg);
  if (fields.length) {
    region.append(
      el(
        "ul",
        {},
        ...fields.map((e) => {
          const where = (e.loc || []).filter((part) => part !== "body").join(".");
          const allowed = Array.isArray(e.allowed) ? ` (allowed: ${e.allowed.join(", ")})` : "";
          return el("li", { textContent: `${where ? `${where}: ` : ""}${e.msg}${allowed}` });
        }),
      ),
    );
  }
  const meta = el("p", { className: "meta" }, "code ", el("code", { className: "code", textContent: problem.code }));
  if (problem.request_id) {
    meta.append(" · request ", el("code", { className: "request-id", textContent: problem.request_id }));
  }
  if (problem.retry_after) meta.append(` · retry after ${problem.retry_after} s`);
  region.append(meta);
  region.dataset.code = problem.code;
}

function clearProblem(region) {
  region.replaceChildren();
  delete region.dataset.code;
}

function newIdempotencyKey() {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  // randomUUID needs a secure context (https or localhost); getRandomValues does not.
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

// -- live updates: text/event-stream over fetch (EventSource cannot send Authorization) ------

/** Events out of a text/event-stream, chunk by chunk (a line or an event may span chunks). */
function* parseEventStream(chunk, state, final = false) {
  state.buffer += chunk;
  for (;;) {
    const end = state.buffer.search(/\r\n|\r|\n/);
    // A lone CR at the end may be the first half of a CRLF still on its way.
    if (end < 0 || (end === state.buffer.length - 1 && state.buffer.endsWith("\r") && !final)) break;
    const line = state.buffer.slice(0, end);
    state.buffer = state.buffer.slice(end + (state.buffer.startsWith("\r\n", end) ? 2 : 1));
    if (line === "") {
      if (state.data.length) yield { event: state.event || "message", data: state.data.join("\n"), id: state.id };
      state.event = "";
      state.data = [];
      continue;
    }
    if (line.startsWith(":")) continue; // keep-alive comment
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") state.event = value;
    else if (field === "data") state.data.push(value);
    else if (field === "id" && !value.includes("\0")) state.id = value;
    else if (field === "retry" && /^\d+$/.test(value)) state.retry = Number(value);
  }
}

const wait = (ms, signal) =>
  new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done);
  });

/**
 * Calls onState with each state of the video, the current one first, until a terminal status.
 * A stream that ends early (its lifetime, a restart, the network) is resumed with
 * Last-Event-ID; a 4xx answer throws Problem; so does a 5xx or network error five times in a row.
 */
async function followVideo(id, onState, signal) {
  let lastEventId = null;
  let retryMs = 1000;
  let failures = 0;
  const idleMs = 45_000; // keep-alive comments come every 15 s
  while (!signal.aborted) {
    const connection = new AbortController();
    const abort = () => connection.abort();
    signal.addEventListener("abort", abort);
    let idle = setTimeout(abort, idleMs);
    let received = 0;
    let failure = null;
    let terminal = false;
    try {
      const headers = { Accept: "text/event-stream", Authorization: `Bearer ${token}` };
      if (lastEventId !== null) headers["Last-Event-ID"] = lastEventId;
      const response = await fetch(`/api/videos/${encodeURIComponent(id)}/events`, {
        headers,
        signal: connection.signal,
        cache: "no-store",
      });
      if (!response.ok) {
        const problem = await problemOf(response);
        if (problem.status === 401) signOut(problem);
        if (problem.status < 500) throw problem;
        failure = problem;
      } else {
        const state = { buffer: "", event: "", data: [], id: lastEventId, retry: null };
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        try {
          for (;;) {
            const { done, value } = await reader.read();
            clearTimeout(idle);
            idle = setTimeout(abort, idleMs);
            for (const event of parseEventStream(value ?? "", state, done)) {
              if (event.event !== "status") continue;
              const video = JSON.parse(event.data);
              received += 1;
              failures = 0;
              if (event.id !== null) lastEventId = event.id;
              onState(video);
              if (TERMINAL.has(video.status)) {
                terminal = true;
                break;
              }
            }
            retryMs = state.retry ?? retryMs;
            if (done || terminal) break;
          }
        } finally {
          reader.cancel().catch(() => {});
        }
      }
    } catch (error) {
      if (signal.aborted) return;
      if (error instanceof Problem && !error.network) throw error;
      failure = error; // the network, an unreadable event, or silence (the idle abort)
    } finally {
      clearTimeout(idle);
      signal.removeEventListener("abort", abort);
    }
    if (terminal) return;
    if (failure === null && received === 0) {
      // Nothing new: the stream lived out its lifetime, or the state we resume from was the
      // last one already. Ask once; done if it is terminal.
      try {
        const video = await api(`/api/videos/${encodeURIComponent(id)}`, { signal });
        if (TERMINAL.has(video.status)) {
          onState(video);
          return;
        }
      } catch (error) {
        if (signal.aborted) return;
        if (error instanceof Problem && !error.network && error.status < 500) throw error;
        failure = error;
      }
      if (failure === null) {
        await wait(retryMs, signal);
        continue;
      }
    }
    if (failure !== null) {
      failures += 1;
      if (failures > 5) throw failure;
      await wait(Math.min(retryMs * 2 ** (failures - 1), 30_000), signal);
    }
    // Otherwise the server ended a stream that had news: reconnect at once, from its last id.
  }
}

// -- sign-in --------------------------------------------------------------------------------

/** A token handed over in the URL's fragment (`#token=…`, never sent to a server). */
function tokenFromFragment() {
  const fromUrl = new URLSearchParams(location.hash.slice(1)).get("token");
  if (!fromUrl) return null;
  // Out of the address bar (and history) at once: it is a credential.
  history.replaceState(null, "", location.pathname + location.search);
  return fromUrl;
}

function signOut(problem = null) {
  for (const controller of follows.values()) controller.abort();
  follows.clear();
  stalled.clear();
  videos.clear();
  selectedId = null;
  token = null;
  upload = null;
  pendingCreate = null;
  sessionStorage.removeItem(TOKEN_KEY);
  $("videos").replaceChildren();
  $("ledger").tBodies[0].replaceChildren();
  $("balance").textContent = "…";
  $("image").value = "";
  $("image-preview").hidden = true;
  $("upload-status").textContent = "";
  for (const region of document.querySelectorAll(".problem")) clearProblem(region);
  $("workspace").hidden = true;
  $("account").hidden = true;
  $("watch").hidden = true;
  $("sign-in").hidden = false;
  $("loading").hidden = true;
  $("token").value = "";
  showProblem($("page-problem"), problem);
}

async function signIn() {
  token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) {
    signOut();
    $("token").focus();
    return;
  }
  $("sign-in").hidden = true;
  $("loading").hidden = false;
  try {
    const list = await api("/api/models");
    models = new Map(list.data.map((model) => [model.id, model]));
  } catch (problem) {
    if (token) showProblem($("page-problem"), problem); // a 401 has signed out already
    $("loading").hidden = true;
    return;
  }
  clearProblem($("page-problem"));
  $("loading").hidden = true;
  $("workspace").hidden = false;
  $("account").hidden = false;
  renderModelSelect();
  renderOptions();
  scheduleQuote();
  // The sign-in form is gone: a keyboard user goes on from the first control, not the top.
  if (document.activeElement === document.body || document.activeElement === null) $("model").focus();
  await Promise.all([refreshCredits(), refreshVideos()]);
}

// -- the form -------------------------------------------------------------------------------

const KIND_LABELS = { "text-to-video": "Text to video", "image-to-video": "Image to video" };

function renderModelSelect() {
  const select = $("model");
  const previous = select.value;
  select.replaceChildren();
  const kinds = new Map();
  for (const model of models.values()) {
    if (!kinds.has(model.kind)) kinds.set(model.kind, []);
    kinds.get(model.kind).push(model);
  }
  for (const [kind, list] of kinds) {
    const group = el("optgroup", { label: KIND_LABELS[kind] || kind });
    for (const model of list) group.append(el("option", { value: model.id, textContent: model.name }));
    select.append(group);
  }
  if (models.has(previous)) select.value = previous;
}

const LABELS = { cfg_scale: "CFG scale", fps: "Frames per second" };
const words = (name) => LABELS[name] ?? name.charAt(0).toUpperCase() + name.slice(1).replaceAll("_", " ");

/** The controls of the selected model's fields: only those it takes, with its values and defaults. */
function renderOptions() {
  const model = models.get($("model").value);
  const fields = $("option-fields");
  fields.replaceChildren();
  if (!model) return;
  fields.dataset.model = model.id;
  const params = model.parameters;
  $("model-info").textContent =
    `${KIND_LABELS[model.kind] || model.kind}; from ${cheapest(model).toLocaleString("en")} credits. ` +
    `Fal endpoint ${model.fal_endpoint}.`;
  const prompt = $("prompt");
  prompt.maxLength = params.prompt?.max_length ?? model.max_prompt_length;
  updatePromptCount();
  $("image-field").hidden = !params.image_url;

  for (const [name, param] of Object.entries(params)) {
    if (name === "prompt" || name === "image_url") continue;
    const id = `opt-${name}`;
    const hintId = `${id}-hint`;
    const hint = param.description ? el("p", { id: hintId, className: "hint", textContent: param.description }) : null;
    let control;
    if (param.type === "boolean" && !param.enum) {
      control = el("input", { type: "checkbox", id, name, checked: param.default === true });
      const wrapper = el("div", { className: "check" }, control, el("label", { htmlFor: id, textContent: words(name) }), hint);
      control.dataset.type = param.type;
      if (hint) control.setAttribute("aria-describedby", hintId);
      fields.append(wrapper);
      continue;
    }
    if (param.enum) {
      control = el("select", { id, name });
      for (const value of param.enum) {
        const label = name === "duration" ? `${value} s` : String(value);
        control.append(el("option", { value: String(value), textContent: label, selected: value === param.default }));
      }
    } else if (param.type === "integer" || param.type === "number") {
      control = el("input", { type: "number", id, name, inputMode: param.type === "integer" ? "numeric" : "decimal" });
      control.step = param.type === "integer" ? "1" : "any";
      if (param.minimum !== null && param.minimum !== undefined) control.min = String(param.minimum);
      if (param.maximum !== null && param.maximum !== undefined) control.max = String(param.maximum);
      if (param.default !== null && param.default !== undefined) control.value = String(param.default);
      else control.placeholder = "model's choice";
    } else {
      control = el("input", { type: "text", id, name, spellcheck: false });
      if (param.max_length) control.maxLength = param.max_length;
      if (param.default !== null && param.default !== undefined) control.value = String(param.default);
    }
    control.dataset.type = param.type;
    if (hint) control.setAttribute("aria-describedby", hintId);
    append(fields, el("label", { htmlFor: id, textContent: words(name) }), control, hint);
  }
  $("options").hidden = fields.childElementCount === 0;
}

function cheapest(model) {
  const prices = model.pricing.combinations.map((combination) => combination.credits);
  return Math.min(...(prices.length ? prices : Object.values(model.pricing.by_duration)));
}

function updatePromptCount() {
  const prompt = $("prompt");
  const limit = prompt.maxLength > 0 ? ` of ${prompt.maxLength}` : "";
  $("prompt-count").textContent = `${prompt.value.length}${limit} characters`;
}

/** The request body the form describes: the model, the prompt, the image, every option set. */
function requestBody({ forQuote = false } = {}) {
  const model = models.get($("model").value);
  const prompt = $("prompt").value;
  const body = { model: $("model").value, prompt: forQuote && prompt.trim() === "" ? QUOTE_PROMPT : prompt };
  if (model?.parameters.image_url) {
    if (upload) body.image_url = upload.image_url;
    else if (forQuote) body.image_url = QUOTE_IMAGE;
  }
  for (const control of $("option-fields").querySelectorAll("input, select")) {
    const type = control.dataset.type;
    if (control.type === "checkbox") {
      body[control.name] = control.checked;
    } else if (control.value.trim() === "") {
      continue; // unset: the model's default
    } else if (type === "integer" || type === "number") {
      const number = Number(control.value);
      body[control.name] = Number.isFinite(number) ? number : control.value;
    } else if (type === "boolean") {
      body[control.name] = control.value === "true";
    } else {
      body[control.name] = control.value;
    }
  }
  return body;
}

function scheduleQuote() {
  // The price shown is stale until the answer comes: say so, rather than show the old one.
  const output = $("price");
  output.dataset.state = "pending";
  delete output.dataset.credits;
  output.textContent = "updating…";
  output.setAttribute("aria-busy", "true");
  clearTimeout(quoteTimer);
  quoteTimer = setTimeout(quote, QUOTE_DEBOUNCE_MS);
}

async function quote() {
  if (!models.has($("model").value)) return;
  quoteAbort?.abort();
  const controller = new AbortController();
  quoteAbort = controller;
  const output = $("price");
  output.dataset.state = "pending";
  try {
    const answer = await api("/api/videos/quote", { method: "POST", json: requestBody({ forQuote: true }), signal: controller.signal });
    if (controller !== quoteAbort) return;
    const model = models.get(answer.model);
    const usd = model ? ` (US$${(answer.credits * model.pricing.credit_usd).toFixed(2)})` : "";
    output.textContent = `${answer.credits.toLocaleString("en")} credits${usd} for ${answer.duration} s`;
    output.dataset.credits = String(answer.credits);
    output.dataset.state = "ok";
    output.removeAttribute("aria-busy");
    clearProblem($("quote-problem"));
  } catch (problem) {
    if (problem.name === "AbortError" || controller !== quoteAbort) return;
    output.textContent = "no price: see below";
    output.dataset.state = "error";
    output.removeAttribute("aria-busy");
    showProblem($("quote-problem"), problem);
  }
}

async function uploadImage() {
  const input = $("image");
  const file = input.files[0];
  upload = null;
  $("image-preview").hidden = true;
  $("image-preview").removeAttribute("src");
  clearProblem($("upload-problem"));
  if (!file) {
    $("upload-status").textContent = "";
    scheduleQuote();
    return;
  }
  $("upload-status").textContent = `Uploading ${file.name}…`;
  const form = new FormData();
  form.append("file", file, file.name);
  const sending = api("/api/uploads", { method: "POST", form });
  uploading = sending.catch(() => {});
  try {
    const answer = await sending;
    if (input.files[0] !== file) return; // another file was chosen meanwhile
    upload = answer;
    $("upload-status").textContent = `Uploaded: ${answer.width}×${answer.height} ${answer.content_type}, ${formatBytes(answer.size)}.`;
    const preview = $("image-preview");
    preview.src = answer.url;
    preview.hidden = false;
  } catch (problem) {
    if (input.files[0] !== file) return;
    $("upload-status").textContent = "Upload failed.";
    showProblem($("upload-problem"), problem);
  } finally {
    if (input.files[0] === file) uploading = null;
  }
  scheduleQuote();
}

async function createVideo(event) {
  event.preventDefault();
  if (creating) return; // a second click while the first is in flight
  const button = $("create");
  const hadFocus = document.activeElement === button;
  creating = true;
  button.disabled = true;
  button.textContent = "Creating…";
  if (uploading) await uploading;
  const body = requestBody();
  const serialized = JSON.stringify(body);
  if (!pendingCreate || pendingCreate.body !== serialized) {
    pendingCreate = { body: serialized, key: newIdempotencyKey() };
  }
  try {
    const video = await api("/api/videos", {
      method: "POST",
      json: body,
      headers: { "Idempotency-Key": pendingCreate.key },
    });
    pendingCreate = null;
    clearProblem($("create-problem"));
    videos.set(video.id, video);
    renderVideoList();
    select(video.id);
    refreshCredits();
  } catch (problem) {
    if (!(problem instanceof Problem) || !problem.network) pendingCreate = null;
    showProblem($("create-problem"), problem);
  } finally {
    creating = false;
    button.disabled = false;
    button.textContent = "Create video";
    // A disabled button loses focus; give it back to a keyboard user.
    if (hadFocus && (document.activeElement === document.body || document.activeElement === null)) button.focus();
  }
}

// -- watching one video ---------------------------------------------------------------------

function follow(id) {
  if (follows.has(id) || stalled.has(id) || follows.size >= MAX_FOLLOWS) return;
  const video = videos.get(id);
  if (video && TERMINAL.has(video.status)) return;
  const controller = new AbortController();
  follows.set(id, controller);
  followVideo(id, (state) => update(state), controller.signal)
    .catch((problem) => {
      stalled.add(id);
      if (id === selectedId) showProblem($("watch-problem"), problem);
    })
    .finally(() => {
      if (follows.get(id) === controller) follows.delete(id);
      if (!controller.signal.aborted) {
        refreshCredits();
        followMore();
      }
    });
}

/** Follows the unfinished videos of the list, as far as the stream cap allows. */
function followMore() {
  if (selectedId) follow(selectedId);
  for (const video of videos.values()) if (!TERMINAL.has(video.status)) follow(video.id);
}

function update(video) {
  videos.set(video.id, video);
  renderVideoItem(video);
  if (video.id === selectedId) renderWatch(video);
}

function select(id) {
  selectedId = id;
  stalled.delete(id);
  playerRefreshedFor = null;
  clearProblem($("watch-problem"));
  const player = $("player");
  player.pause();
  player.removeAttribute("src");
  player.removeAttribute("poster");
  player.load();
  player.hidden = true;
  for (const button of $("videos").querySelectorAll("button")) {
    button.setAttribute("aria-current", String(button.dataset.id === id));
  }
  $("watch").hidden = false;
  const video = videos.get(id);
  if (video) renderWatch(video);
  if (!follows.has(id) && follows.size >= MAX_FOLLOWS && !(video && TERMINAL.has(video.status))) {
    // The one being looked at comes first: another waits (followMore resumes it later).
    const [otherId, controller] = follows.entries().next().value;
    controller.abort();
    follows.delete(otherId);
  }
  follow(id);
}

function statusWords(video) {
  switch (video.status) {
    case "pending":
      return "Pending: charged, being sent to Fal";
    case "queued":
      return video.queue_position === null || video.queue_position === undefined
        ? "Queued at Fal"
        : `Queued at Fal: position ${video.queue_position}`;
    case "processing":
      return "Processing: Fal is generating it";
    case "canceling":
      return "Canceling: waiting for Fal to stop";
    case "completed":
      return video.video ? "Completed" : video.media_deleted_at ? "Completed (media deleted)" : "Completed";
    case "failed":
      return `Failed (${video.error?.code ?? "error"}): ${video.error?.message ?? ""}; refunded`;
    case "canceled":
      return "Canceled; refunded";
    default:
      return video.status;
  }
}

function renderWatch(video) {
  const status = $("watch-status");
  status.textContent = statusWords(video);
  status.dataset.status = video.status;
  status.dataset.videoId = video.id;
  const rows = [
    ["Prompt", video.prompt],
    ["Model", video.model],
    ["Length", `${video.duration} s${video.resolution ? `, ${video.resolution}` : ""}${video.aspect_ratio ? `, ${video.aspect_ratio}` : ""}`],
    ["Charged", `${video.credits_charged.toLocaleString("en")} credits`],
    ["Created", new Date(video.created_at).toLocaleString()],
    ["Id", video.id],
  ];
  $("watch-details").replaceChildren(...rows.flatMap(([term, value]) => [el("dt", { textContent: term }), el("dd", { textContent: value })]));
  $("cancel").hidden = !CANCELABLE.has(video.status);
  const player = $("player");
  const file = video.status === "completed" ? video.video : null;
  if (file) {
    // Every read signs the URLs afresh: keep the one loaded, or playback would restart.
    if (!player.getAttribute("src")) {
      player.setAttribute("aria-label", `The video: ${video.prompt}`);
      if (file.poster_url) player.poster = file.poster_url;
      player.src = file.url;
      $("download").href = file.url;
    }
    player.hidden = false;
    $("download-line").hidden = false;
  } else {
    player.hidden = true;
    $("download-line").hidden = true;
  }
}

async function cancelSelected() {
  const id = selectedId;
  const button = $("cancel");
  button.disabled = true;
  try {
    const video = await api(`/api/videos/${encodeURIComponent(id)}/cancel`, { method: "POST" });
    clearProblem($("watch-problem"));
    update(video);
    refreshCredits();
  } catch (problem) {
    showProblem($("watch-problem"), problem);
  } finally {
    button.disabled = false;
  }
}

async function refreshPlayerUrl() {
  // A signed URL expires (MEDIA_URL_TTL_S): fetch a fresh one once, then give up.
  const id = selectedId;
  if (!id || playerRefreshedFor === id) return;
  playerRefreshedFor = id;
  try {
    const video = await api(`/api/videos/${encodeURIComponent(id)}`);
    if (id !== selectedId || !video.video) return;
    const player = $("player");
    player.src = video.video.url;
    if (video.video.poster_url) player.poster = video.video.poster_url;
  } catch (problem) {
    showProblem($("watch-problem"), problem);
  }
}

// -- the list and the ledger ----------------------------------------------------------------

function renderVideoItem(video) {
  const list = $("videos");
  let item = list.querySelector(`li[data-id="${CSS.escape(video.id)}"]`);
  const button = el(
    "button",
    { type: "button" },
    el("span", { className: "status", textContent: video.status }),
    ` ${video.prompt.length > 80 ? `${video.prompt.slice(0, 80)}…` : video.prompt}`,
    el("span", {
      className: "meta",
      textContent: `${video.model} · ${video.credits_charged.toLocaleString("en")} credits · ${new Date(video.created_at).toLocaleString()}`,
    }),
  );
  button.dataset.id = video.id;
  button.setAttribute("aria-current", String(video.id === selectedId));
  button.addEventListener("click", () => select(video.id));
  if (item) {
    const hadFocus = item.contains(document.activeElement);
    item.replaceChildren(button);
    if (hadFocus) button.focus();
  } else {
    item = el("li", {}, button);
    item.dataset.id = video.id;
    list.prepend(item);
  }
  item.dataset.status = video.status;
  $("videos-empty").hidden = true;
}

function renderVideoList() {
  const oldestFirst = [...videos.values()].sort((a, b) => (a.created_at < b.created_at ? -1 : 1));
  $("videos").replaceChildren();
  for (const video of oldestFirst) renderVideoItem(video); // each goes on top
  $("videos-empty").hidden = videos.size > 0;
}

async function refreshVideos() {
  try {
    const page = await api("/api/videos?limit=10");
    clearProblem($("videos-problem"));
    for (const video of page.data) if (!videos.has(video.id) || !follows.has(video.id)) videos.set(video.id, video);
    renderVideoList();
    followMore();
  } catch (problem) {
    showProblem($("videos-problem"), problem);
  }
}

const KIND_WORDS = { debit: "video", refund: "refund", purchase: "purchase", grant: "grant", roll: "monthly credits", adjustment: "adjustment" };

async function refreshCredits() {
  try {
    const page = await api("/api/credits?limit=10");
    clearProblem($("ledger-problem"));
    const balance = $("balance");
    balance.textContent = `${page.balance.toLocaleString("en")} credits`;
    balance.dataset.balance = String(page.balance);
    $("ledger").tBodies[0].replaceChildren(
      ...page.data.map((row) => {
        const when = new Date(row.created_at);
        const tr = el(
          "tr",
          {},
          el("td", { textContent: when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" }), title: when.toLocaleString() }),
          el("td", { textContent: KIND_WORDS[row.kind] || row.kind, title: row.reason || row.idempotency_key }),
          el("td", { className: "num", textContent: `${row.amount > 0 ? "+" : ""}${row.amount.toLocaleString("en")}` }),
          el("td", { className: "num", textContent: row.balance_after.toLocaleString("en") }),
        );
        tr.dataset.kind = row.kind;
        if (row.video_id) tr.dataset.videoId = row.video_id;
        return tr;
      }),
    );
  } catch (problem) {
    showProblem($("ledger-problem"), problem);
  }
}

function formatBytes(size) {
  if (size < 1024) return `${size} B`;
  if (size < 1024 * 1024) return `${(size / 1024).toFixed(1)} KiB`;
  return `${(size / 1024 / 1024).toFixed(1)} MiB`;
}

// -- wiring ---------------------------------------------------------------------------------

function start() {
  $("sign-in-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = $("token").value.trim().replace(/^Bearer\s+/i, "");
    if (!value) {
      showProblem($("page-problem"), new Problem({ title: "Sign in", code: "token_missing", detail: "paste an API key or a sign-in token first", errors: [] }));
      $("token").focus();
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, value);
    signIn();
  });
  $("sign-out").addEventListener("click", () => {
    signOut();
    $("token").focus();
  });
  $("model").addEventListener("change", () => {
    renderOptions();
    scheduleQuote();
  });
  $("prompt").addEventListener("input", updatePromptCount);
  // The options move the price; the prompt and the image do not (they are checked on create).
  const priced = (event) => !["image", "model", "prompt"].includes(event.target.id);
  $("create-form").addEventListener("input", (event) => {
    if (priced(event)) scheduleQuote();
  });
  $("create-form").addEventListener("change", (event) => {
    if (priced(event)) scheduleQuote();
  });
  $("image").addEventListener("change", uploadImage);
  $("create-form").addEventListener("submit", createVideo);
  $("cancel").addEventListener("click", cancelSelected);
  $("refresh-videos").addEventListener("click", refreshVideos);
  $("player").addEventListener("error", refreshPlayerUrl);
  // A link with #token=… opened while the page is already open.
  window.addEventListener("hashchange", () => {
    const handedOver = tokenFromFragment();
    if (handedOver) {
      signOut();
      sessionStorage.setItem(TOKEN_KEY, handedOver);
      signIn();
    }
  });
  const handedOver = tokenFromFragment();
  if (handedOver) sessionStorage.setItem(TOKEN_KEY, handedOver);
  signIn();
}

start();
