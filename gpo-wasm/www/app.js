// The GPO demo page: plain ES module, no framework, no build step.
//
// URL parameters: ?backend=cpu|webgpu (default cpu: the small bundle in pkg/; webgpu loads
// pkg-webgpu/, which falls back to the CPU when navigator.gpu has no adapter), &group=NAME, &k=N,
// &encoder=int8|f16 (the typed questions' encoder file, default int8). The address's fragment
// carries a typed question: #q=<text>&o=<option>|<option>|… (each part URL-encoded); opening it
// fills the form and predicts.
// The page exposes `window.gpoDemo` for the browser tests (tests/browser.mjs).
//
// A typed question: the encoder file (data/encoder-<dtype>.gpoenc, written by `gpo export-encoder`)
// is downloaded on the first question only, with progress, and kept in the browser's Cache Storage
// (keyed by its size and date, so a rebuilt file is fetched again). `model.withEncoder` checks that
// it is the model's own encoder. The question is embedded once (`embedQuestion`: the model's
// template and encoder, as `gpo predict` embeds a question given by text); each held-out group's
// context is its answers to the k bundled questions nearest to it (`nearestQuestions`, gpo-core's
// similarity rule), and `answer` predicts from the request `gpo predict` would read.
//
// A prior model (model.usesPrior, e.g. gpo_knn) carries its population prior's data (the prior
// groups' answers) in its .gpo file and computes every question's prior itself from the questions'
// keys; the page only passes `keys`. The kNN-groups and train-mean baselines shown beside GPO come
// from the same data, through `model.priors(context, targets, kind)`; a model without prior data
// (the faithful GPO) has no baselines to show ("–").

const params = new URLSearchParams(location.search);
const wanted = params.get("backend") === "webgpu" ? "webgpu" : "cpu";
const $ = (id) => document.getElementById(id);
const status = (text) => { $("status").textContent = text; };

/** f16 bit patterns → f32, through a 64k lookup table. */
function decodeF16(buffer) {
  const table = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1, exp = (h >> 10) & 0x1f, frac = h & 0x3ff;
    table[h] = exp === 0 ? sign * 2 ** -14 * (frac / 1024)
      : exp === 31 ? (frac ? NaN : sign * Infinity)
      : sign * 2 ** (exp - 15) * (1 + frac / 1024);
  }
  const bits = new Uint16Array(buffer);
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = table[bits[i]];
  return out;
}

/** Small seeded generator (mulberry32), so that a context draw can be repeated. */
function rng(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

async function fetchBytes(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response.arrayBuffer();
}

async function loadWasm() {
  if (wanted === "webgpu") {
    try {
      const module = await import("./pkg-webgpu/gpo_wasm.js");
      await module.default();
      return module;
    } catch (error) {
      console.warn("no WebGPU bundle, using the CPU one:", error);
    }
  }
  const module = await import("./pkg/gpo_wasm.js");
  await module.default();
  return module;
}

const started = performance.now();
const [wasm, bank, embeddingBytes, modelBytes] = await Promise.all([
  loadWasm(),
  fetch("data/bank.json").then((r) => r.json()),
  fetchBytes("data/embeddings.f16"),
  fetchBytes("data/model.gpo"),
]);
const embeddings = decodeF16(embeddingBytes);
const dim = bank.dim;
const questionByKey = new Map(bank.questions.map((q) => [q.key, q]));
const model = await wasm.GpoModel.load(new Uint8Array(modelBytes), { backend: wanted === "cpu" ? "cpu" : "auto" });
if (model.dimension !== dim) throw new Error(`the model expects ${model.dimension}-d embeddings, the bank has ${dim}`);
const priorNames = model.priorGroups;
const loadMs = performance.now() - started;

/** The typed arrays and keys of `questions` (bank entries), with `distributions` when given. */
function inputs(questions, distributions) {
  const options = new Uint32Array(questions.map((q) => q.options.length));
  const rows = options.reduce((a, b) => a + b, 0);
  const x = new Float32Array(rows * dim);
  let at = 0;
  for (const q of questions) {
    const n = q.options.length * dim;
    x.set(embeddings.subarray(q.row * dim, q.row * dim + n), at);
    at += n;
  }
  const out = { embeddings: x, options, keys: questions.map((q) => q.key) };
  if (distributions) out.distributions = new Float32Array(distributions.flat());
  return out;
}

/** `model.priors(context, targets, kind)` as plain objects (`distribution` an array), or null for a
 * model without prior data. `kind`: "model" (the prior the model reads), "knn_groups" or
 * "train_mean" (the baselines, over the same prior groups). */
function priorsOf(context, targets, kind) {
  if (!model.usesPrior) return null;
  return model.priors(context, targets, kind)
    .map((p) => ({
      distribution: Array.from(p.distribution), source: p.source, nearest: p.nearest, context: Array.from(p.context ?? []),
    }));
}

/** Predicts `targetKeys` for `group` from its real answers to `contextKeys`: the tests' entry point. */
async function predictKeys(groupName, contextKeys, targetKeys) {
  const group = bank.groups.find((g) => g.name === groupName);
  if (!group) throw new Error(`no held-out group ${groupName}`);
  const context = contextKeys.map((k) => questionByKey.get(k));
  const targets = targetKeys.map((k) => questionByKey.get(k));
  const c = inputs(context, contextKeys.map((k) => group.answers[k]));
  const t = inputs(targets, null);
  const t0 = performance.now();
  const priors = priorsOf(c, t, "model");
  const t1 = performance.now();
  const predicted = await model.predict(c, t);
  const ms = performance.now() - t1;
  return { distributions: predicted.map((d) => Array.from(d)), priors, ms, priorMs: t1 - t0 };
}

/** The survey's alignment of `predicted` with `truth` (gpo-core's metrics), or null where it is
 * undefined (a nominal question: all ordinals equal, no scale to measure on) or not given. */
function alignment(q, truth, predicted) {
  if (!predicted) return null;
  if (bank.metric === "jensen_shannon") return wasm.jsAlignment(new Float64Array(truth), new Float64Array(predicted));
  if (Math.max(...q.ordinal) === Math.min(...q.ordinal)) return null;
  return wasm.wassersteinAlignment(new Float64Array(q.ordinal), new Float64Array(truth), new Float64Array(predicted));
}

// --- the page -------------------------------------------------------------------------------

const state = {
  group: 0,
  k: Number(params.get("k") ?? 8),
  seed: 1,
  answers: new Map(), // question key → option index the visitor chose
  shown: 40,
  result: null,
};
const requestedGroup = bank.groups.findIndex((g) => g.name === params.get("group"));
if (requestedGroup >= 0) state.group = requestedGroup;

for (const [i, g] of bank.groups.entries()) $("group").add(new Option(`${g.name} (${g.attribute})`, String(i)));
$("group").value = String(state.group);
$("k").value = String(state.k);
$("k-out").textContent = String(state.k);
$("backend").value = wanted;
$("about").textContent = `Model: ${model.parameters.toLocaleString()} parameters, trained on ${model.dataset || "?"}, `
  + `embeddings ${model.embeddingModel} (${dim}-d). ${bank.questions.length} questions; held-out groups: `
  + `${bank.groups.length}. Method ${model.method || bank.method}`
  + (model.usesPrior ? `, prior ${model.prior}; prior and baseline groups (meta-training): ${priorNames.join(", ")}.`
    : "; the model carries no prior data, so the kNN-groups and train-mean baselines are not shown.");

function optionRow(name, bars, value, onClick) {
  const row = document.createElement("div");
  row.className = "opt" + (onClick ? " clickable" : "");
  const label = document.createElement("span");
  label.className = "name";
  label.textContent = name;
  label.title = name;
  const barBox = document.createElement("div");
  barBox.className = "bars";
  for (const [kind, p] of bars) {
    const bar = document.createElement("div");
    bar.className = `bar ${kind}`;
    bar.style.width = `${(100 * p).toFixed(1)}%`;
    barBox.append(bar);
  }
  const num = document.createElement("span");
  num.className = "num";
  num.textContent = value;
  row.append(label, barBox, num);
  if (onClick) row.addEventListener("click", onClick);
  return row;
}

function card(q, meta) {
  const div = document.createElement("div");
  div.className = "q";
  const text = document.createElement("div");
  text.className = "text";
  text.textContent = q.text;
  const m = document.createElement("div");
  m.className = "meta";
  m.innerHTML = meta;
  div.append(text, m);
  return div;
}

function pct(p) { return `${Math.round(100 * p)}%`; }

function episode() {
  const group = bank.groups[state.group];
  const keys = bank.questions.map((q) => q.key).filter((k) => group.answers[k]);
  const random = rng(state.seed * 7919 + state.group);
  for (let i = keys.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [keys[i], keys[j]] = [keys[j], keys[i]];
  }
  return { group, context: keys.slice(0, state.k), targets: keys.slice(state.k) };
}

function contextDistribution(group, key) {
  const chosen = state.answers.get(key);
  const q = questionByKey.get(key);
  return chosen === undefined ? group.answers[key] : q.options.map((_, i) => (i === chosen ? 1 : 0));
}

let pending = Promise.resolve();

async function update() {
  const { group, context, targets } = episode();
  status(`Predicting ${targets.length} questions…`);
  const contextQuestions = context.map((k) => questionByKey.get(k));
  const answers = Object.fromEntries(context.map((k) => [k, contextDistribution(group, k)]));
  const c = inputs(contextQuestions, context.map((k) => answers[k]));
  const t = inputs(targets.map((k) => questionByKey.get(k)), null);
  const t0 = performance.now();
  const predicted = await model.predict(c, t);
  const ms = performance.now() - t0;
  // The baselines, computed by the model from its prior data (null without it): kNN groups (the
  // context answers pick the closest prior groups) and the prior groups' plain mean.
  const knn = priorsOf(c, t, "knn_groups");
  const mean = priorsOf(c, t, "train_mean");
  const sums = { gpo: 0, knn: 0, mean: 0, uniform: 0 };
  let scored = 0;
  const rows = targets.map((key, i) => {
    const q = questionByKey.get(key);
    const truth = group.answers[key];
    const uniform = q.options.map(() => 1 / q.options.length);
    const base = knn?.[i].distribution ?? null;
    const scores = { gpo: alignment(q, truth, predicted[i]), knn: alignment(q, truth, base),
      mean: alignment(q, truth, mean?.[i].distribution), uniform: alignment(q, truth, uniform) };
    if (scores.gpo !== null) {
      scored += 1;
      for (const s in sums) sums[s] += scores[s];
    }
    return { q, truth, predicted: predicted[i], base, scores };
  });
  const n = rows.length;
  const means = Object.fromEntries(Object.entries(sums).map(([k, v]) => [k, v / scored]));
  if (!knn) means.knn = null;
  if (!mean) means.mean = null;
  state.result = { ms, n, scored, scores: means };
  for (const k of ["gpo", "knn", "mean", "uniform"]) {
    $(`score-${k}`).textContent = means[k] === null || !Number.isFinite(means[k]) ? "–" : means[k].toFixed(3);
  }
  $("n-targets").textContent = String(scored);

  const contextBox = $("context");
  contextBox.replaceChildren();
  for (const key of context) {
    const q = questionByKey.get(key);
    const mine = state.answers.has(key);
    const c = card(q, mine ? '<span class="answered">answered by you</span> (click again to restore the group\'s answer)' : key);
    const dist = contextDistribution(group, key);
    q.options.forEach((name, o) => c.append(optionRow(name, [["truth", dist[o]]], pct(dist[o]), () => {
      if (state.answers.get(key) === o) state.answers.delete(key); else state.answers.set(key, o);
      schedule();
    })));
    contextBox.append(c);
  }
  if (!context.length) contextBox.textContent = "No context: the model sees only the questions.";

  const targetBox = $("targets");
  targetBox.replaceChildren();
  for (const row of rows.slice(0, state.shown)) {
    const c = card(row.q, row.scores.gpo === null ? `${row.q.key} · nominal question (not scored)`
      : `${row.q.key} · alignment GPO ${row.scores.gpo.toFixed(3)}`
      + (row.scores.knn === null ? "" : `, kNN groups ${row.scores.knn.toFixed(3)}, train mean ${row.scores.mean.toFixed(3)}`));
    row.q.options.forEach((name, o) => c.append(optionRow(name,
      [["pred", row.predicted[o]], ["truth", row.truth[o]], ...(row.base ? [["base", row.base[o]]] : [])],
      `${pct(row.predicted[o])}/${pct(row.truth[o])}`)));
    targetBox.append(c);
  }
  $("more").hidden = rows.length <= state.shown;
  status(`${model.backend === "webgpu" ? "WebGPU" : "CPU"} · ${n} questions predicted in ${ms.toFixed(1)} ms`
    + ` · page ready in ${(loadMs / 1000).toFixed(1)} s`);
}

function schedule() {
  pending = pending.then(update).catch((error) => { status(`Error: ${error.message}`); console.error(error); });
  return pending;
}

$("group").addEventListener("change", (e) => { state.group = Number(e.target.value); state.answers.clear(); schedule(); });
$("k").addEventListener("input", (e) => { state.k = Number(e.target.value); $("k-out").textContent = e.target.value; schedule(); });
$("shuffle").addEventListener("click", () => { state.seed += 1; state.answers.clear(); schedule(); });
$("more").addEventListener("click", () => { state.shown += 40; schedule(); });
$("backend").addEventListener("change", (e) => {
  params.set("backend", e.target.value);
  location.search = params.toString();
});


// --- ask your own question ----------------------------------------------------------------------

const ASK = { maxText: 1000, maxOption: 200, minOptions: 2, maxOptions: 9, nearestShown: 3 };
const encoderDtype = params.get("encoder") === "f16" ? "f16" : "int8";
const encoderUrl = `data/encoder-${encoderDtype}.gpoenc`;
const askStatus = (text) => { $("ask-status").textContent = text; };

/** Why `text` and `options` cannot be asked, or null. */
function askProblem(text, options) {
  if (!text.trim()) return "Type a question.";
  if (text.length > ASK.maxText) return `The question is ${text.length.toLocaleString()} characters long; at most ${ASK.maxText.toLocaleString()} please.`;
  if (options.length === 0) return "Give the question's options, one per line.";
  if (options.length < ASK.minOptions) return `A question needs at least ${ASK.minOptions} options; this one has ${options.length}.`;
  if (options.length > ASK.maxOptions) return `At most ${ASK.maxOptions} options, please; this question has ${options.length}.`;
  const long = options.findIndex((o) => o.length > ASK.maxOption);
  if (long >= 0) return `Option ${long + 1} is ${options[long].length} characters long; at most ${ASK.maxOption} please.`;
  const seen = new Map();
  for (const [i, o] of options.entries()) {
    if (seen.has(o)) return `Option ${i + 1} repeats option ${seen.get(o) + 1} ("${o}").`;
    seen.set(o, i);
  }
  return null;
}

/** The options typed in the form: one per non-blank line, trimmed. */
const typedOptions = () => $("ask-options").value.split("\n").map((o) => o.trim()).filter((o) => o);

/** `url`'s bytes, from Cache Storage when the same file (size and date) is there; otherwise
 * downloaded with `progress(received, total)` and stored. `cached` says which. */
async function cachedBytes(url, progress) {
  const head = await fetch(url, { method: "HEAD", cache: "no-store" });
  if (!head.ok) {
    throw new Error(`${url}: HTTP ${head.status}` + (head.status === 404
      ? " (the encoder file is not there: gpo-wasm/demo.sh writes it)" : ""));
  }
  const version = `${head.headers.get("last-modified") ?? ""}/${head.headers.get("content-length") ?? ""}`;
  const key = `${new URL(url, location.href)}?v=${encodeURIComponent(version)}`;
  const cache = globalThis.caches ? await caches.open("gpo-demo-encoder") : null;
  const hit = cache && await cache.match(key);
  if (hit) return { bytes: new Uint8Array(await hit.arrayBuffer()), cached: true };
  const response = await fetch(url, { cache: "no-store" });
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  // Progress over the bytes received; the total is known when the body is not re-encoded.
  const total = response.headers.get("content-encoding") ? 0 : Number(response.headers.get("content-length") ?? 0);
  const reader = response.body.getReader();
  const parts = [];
  let received = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    parts.push(value);
    received += value.length;
    progress(received, total);
  }
  const bytes = new Uint8Array(received);
  let at = 0;
  for (const part of parts) { bytes.set(part, at); at += part.length; }
  if (cache) {
    for (const old of await cache.keys()) if (old.url.startsWith(`${new URL(url, location.href)}?`)) await cache.delete(old);
    await cache.put(key, new Response(bytes, { headers: { "content-type": "application/octet-stream" } }));
  }
  return { bytes, cached: false };
}

let textModel = null; // the model with its encoder, after the first typed question
async function loadTextModel() {
  if (textModel) return textModel;
  const mb = (n) => (n / 1e6).toFixed(1);
  askStatus("Loading the sentence encoder…");
  const { bytes, cached } = await cachedBytes(encoderUrl, (received, total) => askStatus(total
    ? `Downloading the sentence encoder: ${mb(received)} of ${mb(total)} MB (${Math.floor(100 * received / total)}%)`
    : `Downloading the sentence encoder: ${mb(received)} MB`));
  askStatus(`Reading the sentence encoder (${mb(bytes.length)} MB${cached ? ", from the browser's cache" : ""})…`);
  await new Promise((r) => setTimeout(r, 0)); // let the status paint before the synchronous load
  // The CPU bundle has no tokenizer (it keeps the page small): the text bundle, a superset, is
  // loaded now, with the same model file. The WebGPU bundle has it already.
  let textWasm = wasm, base = model;
  if (typeof wasm.GpoEncoder !== "function") {
    textWasm = await import("./pkg-text/gpo_wasm.js");
    await textWasm.default();
    base = await textWasm.GpoModel.load(new Uint8Array(modelBytes), { backend: "cpu" });
  }
  const encoder = textWasm.GpoEncoder.load(bytes);
  textModel = await base.withEncoder(encoder);
  textModel.encoderInfo = { dtype: encoder.dtype, id: encoder.id, bytes: bytes.length, cached,
    bundle: textWasm === wasm ? "main" : "pkg-text" };
  return textModel;
}

/** Bank embeddings, row offsets and option counts, for `nearestQuestions`. */
const bankRows = new Uint32Array(bank.questions.map((q) => q.row));
const bankOptions = new Uint32Array(bank.questions.map((q) => q.options.length));

/** Predicts every held-out group's answers to a typed question. Resolves to the requests and
 * responses per group, the embeddings, the nearest bundled questions and the timings. */
async function ask(text, options) {
  const problem = askProblem(text, options);
  if (problem) throw new Error(problem);
  const t0 = performance.now();
  const m = await loadTextModel();
  const t1 = performance.now();
  const rows = m.embedQuestion(text, options);
  const t2 = performance.now();
  const order = Array.from(wasm.nearestQuestions(embeddings, bankRows, bankOptions, dim, rows, bank.questions.length));
  const ranked = order.map((i) => bank.questions[i]);
  const target = { embeddings: Array.from({ length: options.length }, (_, o) => Array.from(rows.subarray(o * dim, (o + 1) * dim))) };
  const groups = [];
  for (const group of bank.groups) {
    const context = ranked.filter((q) => group.answers[q.key]).slice(0, state.k).map((q) => ({
      key: q.key,
      embeddings: Array.from({ length: q.options.length }, (_, o) => Array.from(embeddings.subarray((q.row + o) * dim, (q.row + o + 1) * dim))),
      distribution: group.answers[q.key],
    }));
    const request = { context, targets: [target] };
    const response = await m.answer(request);
    groups.push({ name: group.name, attribute: group.attribute, request, prediction: response.predictions[0] });
  }
  const t3 = performance.now();
  return { text, options, rows: Array.from(rows), texts: wasm.questionTexts(model.textTemplate, text, options),
    nearest: ranked.slice(0, ASK.nearestShown).map((q) => q.key), groups, k: state.k, encoder: m.encoderInfo,
    ms: { load: t1 - t0, embed: t2 - t1, predict: t3 - t2, total: t3 - t0 } };
}

/** The sentence saying which rule made the prediction. */
function ruleOf(result) {
  const prior = result.groups[0]?.prediction.prior;
  const context = `each group's answers to the ${result.k} bundled questions nearest to it are its context`;
  if (!model.usesPrior) return `This model reads no population prior: it predicts from the question's embedding; ${context}.`;
  if (prior?.source === "nearest") {
    const own = prior.context?.length ?? 0;
    const shown = prior.nearest.slice(0, 3).join(", ");
    const more = prior.nearest.length > 3 ? ` and ${prior.nearest.length - 3} more` : "";
    return `No group of the model's prior answered this question, so its prior is the new-question rule's, over `
      + `the questions with ${result.options.length} options: ${model.priorRule} (${prior.nearest.length + own} here), `
      + `with the ${JSON.parse(model.prior).kind === "knn_groups" ? "kNN-groups" : "train-mean"} prior of `
      + `${prior.nearest.length ? `${shown}${more}` : "none of the known questions"}`
      + `${own ? ` and, where the group answered a neighbour, its own answer (${own} of them for ${result.groups[0].name})` : ""}; `
      + `the network corrects that prior, and ${context}.`;
  }
  return `The model's prior groups answered this question: the prior is their answers; ${context}.`;
}

function renderAsk(result) {
  $("ask-rule").textContent = ruleOf(result);
  const groupsBox = $("ask-groups");
  groupsBox.replaceChildren();
  for (const g of result.groups) {
    const c = card({ text: `${g.name} (${g.attribute})` }, `context: ${g.request.context.length} nearest answered questions`);
    const prior = g.prediction.prior?.distribution;
    result.options.forEach((name, o) => c.append(optionRow(name,
      [["pred", g.prediction.distribution[o]], ...(prior ? [["base", prior[o]]] : [])], pct(g.prediction.distribution[o]))));
    groupsBox.append(c);
  }
  const nearBox = $("ask-nearest");
  nearBox.replaceChildren();
  for (const key of result.nearest) {
    const q = questionByKey.get(key);
    const c = card(q, key);
    for (const g of bank.groups) {
      const line = document.createElement("div");
      line.className = "answers";
      const answers = g.answers[key];
      line.innerHTML = `<b></b> `;
      line.firstChild.textContent = g.name;
      line.append(answers ? q.options.map((o, i) => `${o} ${pct(answers[i])}`).join(" · ") : "did not answer");
      c.append(line);
    }
    nearBox.append(c);
  }
  $("ask-out").hidden = false;
}

/** `#q=…&o=…|…` for a question. */
const askFragment = (text, options) => `#q=${encodeURIComponent(text)}&o=${options.map(encodeURIComponent).join("|")}`;

let asking = Promise.resolve();
function submitAsk() {
  const text = $("ask-text").value.trim();
  const options = typedOptions();
  const problem = askProblem(text, options);
  $("ask-error").hidden = !problem;
  $("ask-error").textContent = problem ?? "";
  if (problem) return Promise.resolve(null);
  $("ask-go").disabled = true;
  asking = asking.then(() => ask(text, options)).then((result) => {
    renderAsk(result);
    const fragment = askFragment(text, options);
    history.replaceState(null, "", fragment);
    $("ask-link").href = fragment;
    $("ask-link").hidden = false;
    askStatus(`${model.backend === "webgpu" ? "WebGPU" : "CPU"} · embedded in ${result.ms.embed.toFixed(0)} ms, `
      + `${result.groups.length} groups predicted in ${result.ms.predict.toFixed(0)} ms`
      + ` · encoder ${result.encoder.dtype}${result.encoder.cached ? " (cached)" : ""}`);
    state.asked = result;
    return result;
  }).catch((error) => {
    $("ask-error").hidden = false;
    $("ask-error").textContent = error.message;
    askStatus("");
    console.error(error);
    return null;
  }).finally(() => { $("ask-go").disabled = false; });
  return asking;
}

/** Fills the form from the address's `#q=…&o=…` and predicts; resolves to the result (or null). */
function askFromFragment() {
  const hash = location.hash.slice(1);
  if (!hash.startsWith("q=")) return Promise.resolve(null);
  const parts = Object.fromEntries(hash.split("&").map((p) => [p.slice(0, p.indexOf("=")), p.slice(p.indexOf("=") + 1)]));
  try {
    $("ask-text").value = decodeURIComponent(parts.q ?? "");
    $("ask-options").value = (parts.o ? parts.o.split("|").map(decodeURIComponent) : []).join("\n");
  } catch {
    $("ask-error").hidden = false;
    $("ask-error").textContent = "The link's question is not validly encoded.";
    return Promise.resolve(null);
  }
  return submitAsk();
}

$("ask-form").addEventListener("submit", (e) => { e.preventDefault(); submitAsk(); });
window.addEventListener("hashchange", askFromFragment);
const askedFromLink = askFromFragment();

window.gpoDemo = { bank, backend: model.backend, loadMs, predictKeys, inputs, state, rendered: schedule(), wasm, model,
  ask, submitAsk, askFromFragment, askedFromLink, askFragment };
