// The GPO demo page: plain ES module, no framework, no build step.
//
// URL parameters: ?backend=cpu|webgpu (default cpu: the small bundle in pkg/; webgpu loads
// pkg-webgpu/, which falls back to the CPU when navigator.gpu has no adapter), &group=NAME, &k=N.
// The page exposes `window.gpoDemo` for the browser tests (tests/browser.mjs).
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
    .map((p) => ({ distribution: Array.from(p.distribution), source: p.source, nearest: p.nearest }));
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

window.gpoDemo = { bank, backend: model.backend, loadMs, predictKeys, inputs, state, rendered: schedule(), wasm, model };
