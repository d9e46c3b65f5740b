// Browser test of the demo page in real headless Chromium, over the Chrome DevTools Protocol
// (Node's built-in WebSocket — Node ≥ 22, or 20 with `--experimental-websocket` — or else the npm
// package `ws`, which ci.sh installs into gpo-wasm/tests/node_modules on older Node).
//
// usage: node [--experimental-websocket] gpo-wasm/tests/browser.mjs --gpo PATH_TO_GPO_CLI --out DIR
//        --minilm PATH_TO_MINILM_WEIGHTS [--browser chromium-headless-shell] [--paths cpu,webgpu]
//
// For each path (cpu: www/pkg; webgpu: www/pkg-webgpu with --enable-unsafe-webgpu, SwiftShader when
// there is no GPU) it serves gpo-wasm/www on 127.0.0.1 (gzip, as a static host would), loads the
// page, checks the backend that ran, predicts one held-out group with 20 context questions and
// compares with `gpo predict` (≤ 1e-4 per probability) given the same keys, embeddings and
// distributions; for a prior model it also compares the page's priors (`model.priors`) with the
// priors `gpo predict` reports (≤ 1e-6). It times 20 → 100 and 20 → all targets, checks that bad
// inputs reject with an Error, records the page's transfer size, and screenshots the demo. The
// kNN-groups and train-mean baselines are computed in Node by the CPU bundle (`model.priors`, from
// the prior data in the model file), and scored beside GPO and Uniform.
//
// Typed questions (the "ask your own question" form): three real OpinionQA questions that are not
// in the bank are typed into the page. The encoder files' embeddings (f16 and int8, in Node through
// the CPU bundle, and int8 in the page) must match `gpo embed` with the original all-MiniLM-L6-v2
// weights (--minilm) on the same texts (cosine ≥ 0.9999 for f16, ≥ 0.999 for int8); every group's
// prediction must match `gpo predict --encoder` given the page's request with the question as text
// (≤ 1e-4, the same prior rule and nearest questions). It times the first question (the encoder's
// download included) and the next ones, checks that a reload takes the encoder from the browser's
// cache (no download), that a shared link (#q=…&o=…) fills the form and predicts, and that bad
// questions show their message on the page; screenshots DIR/ask-<path>.png.
// Writes DIR/results.json and DIR/demo-<path>.png; exits non-zero on any failure.

import { spawn, execFileSync } from "node:child_process";
import { createServer } from "node:http";
import { readFileSync, writeFileSync, mkdirSync, existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { join, extname, resolve, dirname } from "node:path";
import { gzipSync } from "node:zlib";
import { tmpdir } from "node:os";
import { fileURLToPath, pathToFileURL } from "node:url";

const args = Object.fromEntries(process.argv.slice(2).reduce((pairs, a, i, all) => {
  if (a.startsWith("--")) pairs.push([a.slice(2), all[i + 1]]);
  return pairs;
}, []));
const www = resolve(dirname(fileURLToPath(import.meta.url)), "../www");
const gpo = args.gpo ?? "target/debug/gpo";
const out = resolve(args.out ?? "target/gpo-wasm");
const browser = args.browser ?? "chromium-headless-shell";
const paths = (args.paths ?? "cpu,webgpu").split(",");
const minilm = args.minilm;
if (!minilm || !existsSync(minilm)) {
  console.log(`FAIL --minilm must name the all-MiniLM-L6-v2 weights (the reference for typed questions): ${minilm}`);
  process.exit(1);
}
mkdirSync(out, { recursive: true });

let failures = 0;
const fail = (message) => { failures++; console.log(`FAIL ${message}`); };
const ok = (message) => console.log(`ok   ${message}`);

// --- static server with gzip ------------------------------------------------------------------
const types = { ".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".json": "application/json",
  ".wasm": "application/wasm", ".ts": "text/plain" };
const gzCache = new Map();
const server = createServer((req, res) => {
  const path = decodeURIComponent(new URL(req.url, "http://x").pathname);
  const file = join(www, path.endsWith("/") ? path + "index.html" : path);
  if (!file.startsWith(www) || !existsSync(file)) { res.writeHead(404); res.end(); return; }
  let body = readFileSync(file);
  const headers = { "content-type": types[extname(file)] ?? "application/octet-stream", "cache-control": "no-store",
    "last-modified": statSync(file).mtime.toUTCString() };
  // Encoder files barely compress (int8 weights): sent as they are, with their length (the page's
  // download progress).
  if (extname(file) === ".gpoenc") {
    headers["content-length"] = String(body.length);
  } else if ((req.headers["accept-encoding"] ?? "").includes("gzip")) {
    if (!gzCache.has(file)) gzCache.set(file, gzipSync(body, { level: 9 }));
    body = gzCache.get(file);
    headers["content-encoding"] = "gzip";
  }
  res.writeHead(200, headers);
  res.end(body);
});
await new Promise((r) => server.listen(0, "127.0.0.1", r));
const base = `http://127.0.0.1:${server.address().port}/`;

// --- a minimal CDP client ---------------------------------------------------------------------
async function launch(extraFlags) {
  const profile = mkdtempSync(join(tmpdir(), "gpo-chromium-"));
  const child = spawn(browser, ["--headless", "--no-sandbox", "--disable-gpu-sandbox", "--remote-debugging-port=0",
    `--user-data-dir=${profile}`, "--window-size=1280,1600", ...extraFlags, "about:blank"],
    { stdio: ["ignore", "ignore", "pipe"] });
  const wsUrl = await new Promise((resolveUrl, reject) => {
    let text = "";
    const timer = setTimeout(() => reject(new Error(`${browser} did not start: ${text}`)), 30000);
    child.stderr.on("data", (d) => {
      text += d;
      const m = text.match(/DevTools listening on (ws:\/\/\S+)/);
      if (m) { clearTimeout(timer); resolveUrl(m[1]); }
    });
    child.on("error", reject);
  });
  const Socket = globalThis.WebSocket ?? (await import("ws")).default;
  const ws = new Socket(wsUrl);
  await new Promise((r, e) => { ws.onopen = r; ws.onerror = e; });
  let id = 0;
  const waiting = new Map();
  const listeners = [];
  ws.onmessage = (event) => {
    const msg = JSON.parse(event.data);
    if (msg.id && waiting.has(msg.id)) {
      const { resolve: r, reject } = waiting.get(msg.id);
      waiting.delete(msg.id);
      msg.error ? reject(new Error(JSON.stringify(msg.error))) : r(msg.result);
    } else if (msg.method) listeners.forEach((l) => l(msg));
  };
  const send = (method, params = {}, sessionId) => new Promise((r, reject) => {
    waiting.set(++id, { resolve: r, reject });
    ws.send(JSON.stringify({ id, method, params, sessionId }));
  });
  const { targetId } = await send("Target.createTarget", { url: "about:blank" });
  const { sessionId } = await send("Target.attachToTarget", { targetId, flatten: true });
  const page = (method, params) => send(method, params, sessionId);
  const logs = [];
  const requests = [];
  let transfer = 0;
  listeners.push((msg) => {
    if (msg.method === "Runtime.consoleAPICalled") logs.push(`${msg.params.type}: ${msg.params.args.map((a) => a.value ?? a.description).join(" ")}`);
    if (msg.method === "Runtime.exceptionThrown") logs.push(`exception: ${JSON.stringify(msg.params.exceptionDetails.exception?.description ?? msg.params.exceptionDetails.text)}`);
    if (msg.method === "Network.loadingFinished") transfer += msg.params.encodedDataLength;
    if (msg.method === "Network.requestWillBeSent") requests.push({ url: msg.params.request.url, method: msg.params.request.method });
  });
  await page("Runtime.enable");
  await page("Page.enable");
  await page("Network.enable");
  await page("Network.setCacheDisabled", { cacheDisabled: true });
  const evaluate = async (expression) => {
    const r = await page("Runtime.evaluate", { expression, awaitPromise: true, returnByValue: true });
    if (r.exceptionDetails) throw new Error(r.exceptionDetails.exception?.description ?? r.exceptionDetails.text);
    return r.result.value;
  };
  const close = () => { ws.close(); child.kill(); setTimeout(() => rmSync(profile, { recursive: true, force: true }), 500); };
  return { page, evaluate, logs, close, requests, transfer: () => transfer, resetTransfer: () => { transfer = 0; } };
}

async function waitFor(b, expression, seconds) {
  const deadline = Date.now() + seconds * 1000;
  while (Date.now() < deadline) {
    if (await b.evaluate(expression).catch(() => false)) return true;
    await new Promise((r) => setTimeout(r, 200));
  }
  return false;
}

// --- the reference: `gpo predict` on the same inputs ------------------------------------------
const bank = JSON.parse(readFileSync(join(www, "data/bank.json"), "utf8"));
const f16 = new Uint16Array(new Uint8Array(readFileSync(join(www, "data/embeddings.f16"))).buffer);
function halfToFloat(h) {
  const sign = h & 0x8000 ? -1 : 1, exp = (h >> 10) & 0x1f, frac = h & 0x3ff;
  return exp === 0 ? sign * 2 ** -14 * (frac / 1024) : sign * 2 ** (exp - 15) * (1 + frac / 1024);
}
const byKey = new Map(bank.questions.map((q) => [q.key, q]));
const rows = (q) => Array.from({ length: q.options.length }, (_, o) =>
  Array.from(f16.subarray((q.row + o) * bank.dim, (q.row + o + 1) * bank.dim), halfToFloat));
const group = bank.groups[0];
const answered = bank.questions.map((q) => q.key).filter((k) => group.answers[k]);
const contextKeys = answered.slice(0, 20);
const target100 = answered.slice(20, 120);
const targetAll = answered.slice(20);

// The CPU bundle in Node: the same model computes the baselines from the prior data it carries.
const wasmNode = await import(pathToFileURL(join(www, "pkg/gpo_wasm.js")));
wasmNode.initSync({ module: readFileSync(join(www, "pkg/gpo_wasm_bg.wasm")) });
const nodeModel = await wasmNode.GpoModel.load(new Uint8Array(readFileSync(join(www, "data/model.gpo"))), { backend: "cpu" });
const options = (key) => byKey.get(key).options.length;
const modelInfo = JSON.parse(execFileSync(gpo, ["inspect", "--json", join(www, "data/model.gpo")]));
const usesPrior = modelInfo.config.prior;
if (nodeModel.usesPrior !== usesPrior) fail(`usesPrior: the bundle says ${nodeModel.usesPrior}, gpo inspect ${usesPrior}`);
console.log(`model: ${modelInfo.metadata.method || "gpo"}, prior ${usesPrior ? JSON.stringify(modelInfo.prior.kind) : "none"}, `
  + `${modelInfo.parameters} parameters; ${usesPrior ? modelInfo.prior.groups.length : 0} prior groups; `
  + `bank: ${bank.questions.length} questions, ${bank.groups.length} held-out groups`);

/** The survey's alignment (gpo-core's metrics through the bundle), null where undefined. */
const score = (key, predicted, truth) => {
  const f64 = (v) => new Float64Array(v);
  try {
    return bank.metric === "jensen_shannon" ? wasmNode.jsAlignment(f64(predicted), f64(truth))
      : wasmNode.wassersteinAlignment(f64(byKey.get(key).ordinal), f64(predicted), f64(truth));
  } catch {
    return null;
  }
};
/** The bindings' inputs for `keys`, with the group's answers for the context. */
const inputsOf = (keys, withAnswers) => ({
  embeddings: new Float32Array(keys.flatMap((k) => rows(byKey.get(k)).flat())),
  options: new Uint32Array(keys.map(options)),
  keys,
  ...(withAnswers ? { distributions: new Float32Array(keys.flatMap((k) => group.answers[k])) } : {}),
});
const nodePriors = (kind) => usesPrior
  ? nodeModel.priors(inputsOf(contextKeys, true), inputsOf(targetAll, false), kind).map((p) => Array.from(p.distribution))
  : null;

function reference(targetKeys) {
  const request = {
    context: contextKeys.map((key) => ({ key, embeddings: rows(byKey.get(key)), distribution: group.answers[key] })),
    targets: targetKeys.map((key) => ({ key, embeddings: rows(byKey.get(key)) })),
  };
  const file = join(out, "request.json");
  writeFileSync(file, JSON.stringify(request));
  const text = execFileSync(gpo, ["predict", "--model", join(www, "data/model.gpo"), "--input", file], { maxBuffer: 1 << 28 });
  return JSON.parse(text).predictions;
}
const referencePredictions = reference(targetAll);
const expected = referencePredictions.map((p) => p.distribution);
const expectedPriors = usesPrior ? referencePredictions.map((p) => p.prior) : null;
ok(`gpo predict: ${group.name}, ${contextKeys.length} context → ${targetAll.length} targets (by key, no priors given)`);
const maxDiffOf = (a, b) => {
  let d = 0;
  a.forEach((p, i) => p.forEach((v, o) => { d = Math.max(d, Math.abs(v - b[i][o])); }));
  return d;
};
if (usesPrior) {
  const missing = expectedPriors.filter((p) => !p).length;
  (missing === 0 ? ok : fail)(`gpo predict reports a prior for every target (${missing} missing)`);
  const d = maxDiffOf(nodePriors("model"), expectedPriors.map((p) => p?.distribution ?? []));
  (d <= 1e-6 ? ok : fail)(`Node (bundle) priors vs gpo predict's, max |diff| ${d.toExponential(2)}`);
}

// GPO (gpo predict) against the baselines on this episode, scored as gpo-train scores; the
// baselines come from the model's prior data (none for a model without a prior).
const meanOver = (predictions) => {
  if (!predictions) return null;
  let sum = 0, n = 0;
  targetAll.forEach((key, i) => {
    const s = score(key, predictions[i], group.answers[key]);
    if (s !== null) { sum += s; n++; }
  });
  return sum / n;
};
const alignments = {
  gpo: meanOver(expected),
  knn_groups: meanOver(nodePriors("knn_groups")),
  train_mean: meanOver(nodePriors("train_mean")),
  uniform: meanOver(targetAll.map((key) => new Array(options(key)).fill(1 / options(key)))),
};
console.log(`   alignment on ${group.name} (${contextKeys.length} context → ${targetAll.length}): `
  + Object.entries(alignments).map(([k, v]) => `${k} ${v === null ? "–" : v.toFixed(4)}`).join(", "));
if (alignments.train_mean !== null) {
  (alignments.gpo >= alignments.train_mean ? ok : fail)(`GPO's alignment ${alignments.gpo.toFixed(4)} ≥ train-group mean ${alignments.train_mean.toFixed(4)}`);
}


// --- typed questions: the references ------------------------------------------------------------
// Three real OpinionQA questions (American Trends Panel; their answer options without "Refused" or
// "Not sure") that are not in the bank: the page has never seen them.
const typed = [
  { key: "ROBJOB9_W27", text: "How likely, if at all, do you think it is that your own job or profession will be mostly done by robots or computers in your lifetime?",
    options: ["Very likely", "Somewhat likely", "Not very likely", "Not at all likely"] },
  { key: "TRACKGOV1a_W49", text: "As far as you know, how much of what you do online or on your cellphone is being tracked by the government?",
    options: ["All or almost all of it", "Most of it", "Some of it", "Very little of it", "None of it"] },
  { key: "FACE4a_W49", text: "In your opinion, is it acceptable or unacceptable to use facial recognition technology in the following situations? Law enforcement agencies assessing potential security threats in public spaces",
    options: ["Acceptable", "Unacceptable"] },
];
for (const q of typed) {
  if (byKey.has(q.key) || bank.questions.some((b) => b.text === q.text)) fail(`typed question ${q.key} is in the bank`);
}
const encoderFile = (dtype) => join(www, `data/encoder-${dtype}.gpoenc`);
const template = nodeModel.textTemplate;
const typedTexts = typed.map((q) => wasmNode.questionTexts(template, q.text, q.options));
/** A .npy file's f32 rows (version 1 or 2 header, little-endian f32, C order). */
function readNpy(file) {
  const bytes = readFileSync(file);
  const headerLength = bytes[6] === 1 ? bytes.readUInt16LE(8) : bytes.readUInt32LE(8);
  const start = (bytes[6] === 1 ? 10 : 12) + headerLength;
  const header = bytes.subarray(0, start).toString("latin1");
  if (!header.includes("'<f4'")) throw new Error(`${file}: not little-endian f32: ${header}`);
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset + start, bytes.byteOffset + bytes.length));
}
// `gpo embed` over every typed text, with the original f32 weights: the reference vectors.
const allTexts = typedTexts.flat();
writeFileSync(join(out, "typed-texts.jsonl"), allTexts.map((t) => JSON.stringify(t)).join("\n") + "\n");
execFileSync(gpo, ["embed", "--texts", join(out, "typed-texts.jsonl"), "--model", minilm, "--out", join(out, "typed-texts.npy")],
  { stdio: ["ignore", "ignore", "inherit"] });
const referenceVectors = readNpy(join(out, "typed-texts.npy"));
const edim = referenceVectors.length / allTexts.length;
/** The smallest cosine between `vectors` (rows of `edim`) and the reference rows from `first`. */
function worstCosine(vectors, first) {
  let worst = 1;
  for (let r = 0; r < vectors.length / edim; r++) {
    let dot = 0, a = 0, b = 0;
    for (let j = 0; j < edim; j++) {
      const x = vectors[r * edim + j], y = referenceVectors[(first + r) * edim + j];
      dot += x * y; a += x * x; b += y * y;
    }
    worst = Math.min(worst, dot / Math.sqrt(a * b));
  }
  return worst;
}
const firstRow = (i) => typedTexts.slice(0, i).reduce((n, t) => n + t.length, 0);
// The text bundle (the CPU bundle with the encoder, what the CPU page loads for typed questions).
const wasmText = await import(pathToFileURL(join(www, "pkg-text/gpo_wasm.js")));
wasmText.initSync({ module: readFileSync(join(www, "pkg-text/gpo_wasm_bg.wasm")) });
const encoderChecks = {};
for (const [dtype, bound] of [["f16", 0.9999], ["int8", 0.999]]) {
  const bytes = readFileSync(encoderFile(dtype));
  const encoder = wasmText.GpoEncoder.load(new Uint8Array(bytes));
  const worst = Math.min(...typedTexts.map((texts, i) => worstCosine(encoder.embed(texts), firstRow(i))));
  (worst >= bound ? ok : fail)(`Node (text bundle) ${dtype} encoder vs gpo embed (f32 weights) on ${allTexts.length} typed texts: `
    + `worst cosine ${worst.toFixed(7)} ≥ ${bound}`);
  encoderChecks[dtype] = { bytes: bytes.length, gzip_bytes: gzipSync(bytes, { level: 9 }).length, worst_cosine: worst };
  encoder.free();
}
console.log(`   encoder files: ${Object.entries(encoderChecks).map(([d, c]) => `${d} ${c.bytes} B (gzip -9 ${c.gzip_bytes})`).join(", ")}`);

/** `gpo predict --encoder` on the page's request for one group, the typed question as text. */
function typedReference(request, q, dtype) {
  const file = join(out, "typed-request.json");
  writeFileSync(file, JSON.stringify({ context: request.context, targets: [{ text: q.text, options: q.options }] }));
  const text = execFileSync(gpo, ["predict", "--model", join(www, "data/model.gpo"), "--encoder", encoderFile(dtype),
    "--input", file], { maxBuffer: 1 << 28 });
  return JSON.parse(text).predictions[0];
}

/** The page's typed-question form: fills it and presses Predict; resolves to the result and the
 * time from the press to the rendered result (the encoder's download included, the first time). */
const typeQuestion = (text, options) => `(async () => {
  const d = window.gpoDemo;
  document.getElementById("ask-text").value = ${JSON.stringify(text)};
  document.getElementById("ask-options").value = ${JSON.stringify(options.join("\n"))};
  const t0 = performance.now();
  const result = await d.submitAsk();
  const ms = performance.now() - t0;
  const error = document.getElementById("ask-error");
  return { ms, result, error: error.hidden ? null : error.textContent,
    bars: document.querySelectorAll("#ask-groups .bar.pred").length, rule: document.getElementById("ask-rule").textContent };
})()`;
const badQuestions = [
  ["no option", "Should the voting age be lowered to 16?", [], "options"],
  ["one option", "Should the voting age be lowered to 16?", ["Yes"], "at least 2"],
  ["ten options", "Rate the weather", Array.from({ length: 10 }, (_, i) => `${i + 1}`), "at most 9"],
  ["empty text", "   ", ["Yes", "No"], "type a question"],
  ["2,000 characters", "Why?".repeat(500), ["Yes", "No"], "at most 1,000"],
];

// --- each path --------------------------------------------------------------------------------
const results = { group: group.name, context: contextKeys.length, method: modelInfo.metadata.method,
  alignments, encoders: encoderChecks, paths: {} };
// Each bad input must reject with an Error whose message contains the needle (case-insensitive).
const badInputs = `(async () => {
  const { model, wasm } = window.gpoDemo;
  const d = model.dimension;
  const good = { embeddings: new Float32Array(2 * d), options: [2], distributions: [0.5, 0.5] };
  const target = { embeddings: new Float32Array(3 * d), options: [3] };
  const cases = {
    wrongDimension: [{ ...good, embeddings: new Float32Array(2 * (d + 1)) }, target, "dimension"],
    lengthsDisagree: [{ ...good, distributions: [1] }, target, "distributions"],
    nan: [good, { ...target, embeddings: new Float32Array(3 * d).fill(NaN) }, "non-finite"],
    notTyped: [{ ...good, embeddings: [1, 2] }, target, "Float32Array"],
    noTargets: [good, { embeddings: new Float32Array(0), options: [] }, "target"],
    notNormalised: [{ ...good, distributions: [0.5, 0.6] }, target, "sums to"],
    negative: [{ ...good, distributions: [-0.5, 1.5] }, target, "negative"],
    contextPriors: [{ ...good, priors: [0.5, 0.5] }, target, "keys"],
    targetPriors: [good, { ...target, priors: [0.2, 0.3, 0.5] }, "keys"],
    keysLength: [{ ...good, keys: ["a", "b"] }, target, "keys"],
  };
  const messages = {};
  const message = (e) => (e instanceof Error ? "Error: " : "not an Error: ") + e.message;
  for (const [name, [c, t, needle]] of Object.entries(cases)) {
    try { await model.predict(c, t); messages[name] = ["NO ERROR", needle]; }
    catch (e) { messages[name] = [message(e), needle]; }
  }
  if (model.usesPrior) {
    try { model.priors(good, target, "quantum"); messages.priorKind = ["NO ERROR", "kind"]; }
    catch (e) { messages.priorKind = [message(e), "kind"]; }
  }
  try { await wasm.GpoModel.load(new Uint8Array([1, 2, 3])); messages.corruptFile = ["NO ERROR", "invalid .gpo"]; }
  catch (e) { messages.corruptFile = [message(e), "invalid .gpo"]; }
  return messages;
})()`;

for (const path of paths) {
  const flags = path === "webgpu" ? ["--enable-unsafe-webgpu", "--enable-features=Vulkan"] : [];
  const b = await launch(flags);
  try {
    const url = `${base}index.html?backend=${path}&group=${encodeURIComponent(group.name)}&k=8`;
    b.resetTransfer();
    const t0 = Date.now();
    await b.page("Page.navigate", { url });
    if (!(await waitFor(b, "window.gpoDemo !== undefined", 120))) {
      fail(`${path}: the page did not load; console:\n  ${b.logs.join("\n  ")}`);
      continue;
    }
    await b.evaluate("window.gpoDemo.rendered.then(() => true)");
    const ready = (Date.now() - t0) / 1000;
    const backend = await b.evaluate("window.gpoDemo.backend");
    const transfer = b.transfer();
    const adapter = await b.evaluate("navigator.gpu ? navigator.gpu.requestAdapter().then(a => a ? (a.info ? a.info.vendor + ' ' + a.info.architecture : 'adapter') : 'null') : 'no navigator.gpu'");
    console.log(`== path ${path}: backend ${backend}, WebGPU adapter: ${adapter}; page ready in ${ready.toFixed(1)} s; transfer ${transfer} bytes`);
    if (backend !== path) fail(`${path}: the model ran on ${backend}`);
    // The page's budget: 3 MB (gzip) for everything the CPU path downloads.
    if (path === "cpu") (transfer <= 3e6 ? ok : fail)(`cpu: page transfer ${(transfer / 1e6).toFixed(2)} MB ≤ 3 MB`);
    const shot = await b.page("Page.captureScreenshot", { format: "png" });
    writeFileSync(join(out, `demo-${path}.png`), Buffer.from(shot.data, "base64"));

    const call = (targets) => `window.gpoDemo.predictKeys(${JSON.stringify(group.name)}, ${JSON.stringify(contextKeys)}, ${JSON.stringify(targets)})`;
    const got = await b.evaluate(call(targetAll));
    let maxDiff = 0;
    got.distributions.forEach((d, i) => d.forEach((p, o) => { maxDiff = Math.max(maxDiff, Math.abs(p - expected[i][o])); }));
    (maxDiff <= 1e-4 ? ok : fail)(`${path}: ${targetAll.length} predictions vs gpo predict, max |diff| ${maxDiff.toExponential(2)}`);
    let priorDiff = null;
    if (usesPrior) {
      priorDiff = maxDiffOf(got.priors.map((p) => p.distribution), expectedPriors.map((p) => p.distribution));
      const sources = got.priors.filter((p, i) => p.source !== expectedPriors[i].source
        || p.nearest.join("\n") !== expectedPriors[i].nearest.join("\n")).length;
      (priorDiff <= 1e-6 && sources === 0 ? ok : fail)(`${path}: the page's priors (model.priors) vs gpo predict's, max |diff| `
        + `${priorDiff.toExponential(2)}, ${sources} sources differ; computed in ${got.priorMs.toFixed(1)} ms`);
    } else if (got.priors !== null) {
      fail(`${path}: a model without a prior returned priors`);
    }

    // SwiftShader (WebGPU without a GPU) takes seconds per call: fewer repetitions there.
    const reps = path === "webgpu" ? 3 : 7;
    const time = async (targets) => {
      const ms = [];
      for (let i = 0; i < reps; i++) ms.push((await b.evaluate(call(targets))).ms);
      ms.sort((a, c) => a - c);
      return { median: ms[(reps - 1) / 2], min: ms[0], max: ms[reps - 1], runs: reps };
    };
    const t100 = await time(target100);
    const tAll = await time(targetAll);
    console.log(`   latency 20 → 100 targets: median ${t100.median.toFixed(1)} ms (min ${t100.min.toFixed(1)}, max ${t100.max.toFixed(1)})`);
    console.log(`   latency 20 → ${targetAll.length} targets: median ${tAll.median.toFixed(1)} ms (min ${tAll.min.toFixed(1)}, max ${tAll.max.toFixed(1)})`);

    const errors = await b.evaluate(badInputs);
    for (const [name, [message, needle]] of Object.entries(errors)) {
      const good = message.startsWith("Error: ") && message.toLowerCase().includes(needle.toLowerCase());
      (good ? ok : fail)(`${path}: ${name} → ${message}${good ? "" : ` (expected an Error mentioning "${needle}")`}`);
    }

    // Typed questions. The first one downloads the encoder (timed from the press of Predict).
    const asked = [];
    for (const [i, q] of typed.entries()) {
      const r = await b.evaluate(typeQuestion(q.text, q.options));
      if (!r.result) { fail(`${path}: typed ${q.key}: no result (${r.error}); console:\n  ${b.logs.join("\n  ")}`); continue; }
      asked.push(r);
      const res = r.result;
      const cos = worstCosine(new Float32Array(res.rows), firstRow(i));
      (cos >= 0.999 ? ok : fail)(`${path}: typed ${q.key}: the page's ${res.encoder.dtype} embeddings vs gpo embed, worst cosine ${cos.toFixed(7)} ≥ 0.999`);
      const texts = JSON.stringify(res.texts) === JSON.stringify(typedTexts[i]);
      (texts ? ok : fail)(`${path}: typed ${q.key}: the page embeds the template's texts`);
      let diff = 0, rules = 0;
      for (const g of res.groups) {
        const want = typedReference(g.request, q, res.encoder.dtype);
        g.prediction.distribution.forEach((p, o) => { diff = Math.max(diff, Math.abs(p - want.distribution[o])); });
        const a = g.prediction.prior, w = want.prior;
        if ((a?.source ?? null) !== (w?.source ?? null) || (a?.nearest ?? []).join("\n") !== (w?.nearest ?? []).join("\n")) rules++;
      }
      (diff <= 1e-4 && rules === 0 ? ok : fail)(`${path}: typed ${q.key}: ${res.groups.length} groups (context: ${res.k} nearest `
        + `answered questions each) vs gpo predict --encoder, max |diff| ${diff.toExponential(2)}, ${rules} prior rules differ`);
      (r.bars === res.groups.length * q.options.length ? ok : fail)(`${path}: typed ${q.key}: ${r.bars} bars drawn `
        + `(${res.groups.length} groups × ${q.options.length} options)`);
      if (i === 0) console.log(`   rule shown: ${r.rule}`);
    }
    const shotAsk = await b.page("Page.captureScreenshot", { format: "png" });
    writeFileSync(join(out, `ask-${path}.png`), Buffer.from(shotAsk.data, "base64"));
    // Later questions: embed + predict every group, the encoder loaded.
    const askReps = path === "webgpu" ? 3 : 6;
    const askMs = [];
    for (let i = 0; i < askReps; i++) {
      const q = typed[i % typed.length];
      const r = await b.evaluate(typeQuestion(q.text, q.options));
      if (r.result) askMs.push({ total: r.ms, embed: r.result.ms.embed, predict: r.result.ms.predict });
    }
    const median = (xs) => { const v = [...xs].sort((a, c) => a - c); return v[Math.floor((v.length - 1) / 2)]; };
    const typedTiming = asked.length ? {
      first_ms: asked[0].ms, first_encoder: asked[0].result.encoder, runs: askMs.length,
      median_ms: median(askMs.map((m) => m.total)), median_embed_ms: median(askMs.map((m) => m.embed)),
      median_predict_ms: median(askMs.map((m) => m.predict)), groups: asked[0].result.groups.length,
    } : null;
    if (typedTiming) {
      console.log(`   typed question: first ${typedTiming.first_ms.toFixed(0)} ms (encoder ${typedTiming.first_encoder.dtype}, `
        + `${typedTiming.first_encoder.bytes} B, ${typedTiming.first_encoder.cached ? "cached" : "downloaded"}); then median `
        + `${typedTiming.median_ms.toFixed(0)} ms (embed ${typedTiming.median_embed_ms.toFixed(0)}, predict ${typedTiming.groups} groups `
        + `${typedTiming.median_predict_ms.toFixed(0)}) over ${typedTiming.runs}`);
    }
    // Bad questions: a message on the page, no prediction.
    const badMessages = {};
    for (const [name, text, options, needle] of badQuestions) {
      const r = await b.evaluate(typeQuestion(text, options));
      const good = r.result === null && r.error && r.error.toLowerCase().includes(needle.toLowerCase());
      (good ? ok : fail)(`${path}: typed ${name} → "${r.error}"${good ? "" : ` (expected a message mentioning "${needle}")`}`);
      badMessages[name] = r.error;
    }
    // A shared link, after a reload: fills the form and predicts, the encoder from the cache.
    const link = await b.evaluate(`window.gpoDemo.askFragment(${JSON.stringify(typed[1].text)}, ${JSON.stringify(typed[1].options)})`);
    b.requests.length = 0;
    await b.page("Page.navigate", { url: `${base}index.html?backend=${path}&k=8${link}` });
    await new Promise((r) => setTimeout(r, 300));
    const linked = (await waitFor(b, "window.gpoDemo !== undefined", 120))
      && await b.evaluate(`window.gpoDemo.askedFromLink.then((r) => r && { options: r.options, text: r.text,
        cached: r.encoder.cached, form: document.getElementById("ask-text").value })`);
    const downloads = b.requests.filter((r) => r.url.includes(".gpoenc") && r.method === "GET").length;
    (linked && linked.text === typed[1].text && linked.options.join("|") === typed[1].options.join("|")
      && linked.form === typed[1].text ? ok : fail)(`${path}: the link ${link.slice(0, 40)}… fills the form and predicts`);
    (linked && linked.cached && downloads === 0 ? ok : fail)(`${path}: after a reload the encoder comes from the browser's `
      + `cache (${downloads} downloads)`);
    // The f16 encoder in the page (?encoder=f16; CPU path only: a 45.6 MB download).
    let f16Cosine = null;
    if (path === "cpu") {
      await b.page("Page.navigate", { url: `${base}index.html?backend=${path}&k=8&encoder=f16` });
      await new Promise((r) => setTimeout(r, 300));
      if (await waitFor(b, "window.gpoDemo !== undefined", 120)) {
        const r = await b.evaluate(typeQuestion(typed[0].text, typed[0].options));
        f16Cosine = r.result ? worstCosine(new Float32Array(r.result.rows), firstRow(0)) : null;
        (r.result?.encoder.dtype === "f16" && f16Cosine >= 0.9999 ? ok : fail)(`${path}: typed ${typed[0].key} with the f16 `
          + `encoder (${r.result?.encoder.dtype}): the page's embeddings vs gpo embed, worst cosine ${f16Cosine?.toFixed(7)} ≥ 0.9999`);
      } else {
        fail(`${path}: the page with ?encoder=f16 did not load`);
      }
    }
    results.paths[path] = { backend, adapter, ready_s: ready, transfer_bytes: transfer, max_abs_diff: maxDiff,
      latency_ms_100: t100, latency_ms_all: tAll, n_all: targetAll.length, prior_ms: got.priorMs, max_prior_diff: priorDiff,
      page_scores: await b.evaluate("window.gpoDemo.rendered.then(() => window.gpoDemo.state.result.scores)"), errors, typed: typedTiming, typed_errors: badMessages, typed_f16_cosine: f16Cosine };
    const problems = b.logs.filter((l) => l.startsWith("exception") || l.startsWith("error"));
    if (problems.length) console.log(`   console:\n   ${problems.join("\n   ")}`);
  } catch (error) {
    fail(`${path}: ${error.stack}\n  console:\n  ${b.logs.join("\n  ")}`);
  } finally {
    b.close();
  }
}
server.close();
writeFileSync(join(out, "results.json"), JSON.stringify(results, null, 2));
console.log(`paths run: ${Object.keys(results.paths).map((p) => `${p} (${results.paths[p].backend})`).join(", ") || "none"}`);
console.log(`results and screenshots in ${out}`);
if (failures && paths.includes("webgpu")) {
  console.log("(the webgpu path runs WebGPU on SwiftShader via --enable-unsafe-webgpu; to tell a WebGPU/driver " +
    "problem from a bindings bug, rerun one path: GPO_WASM_PATHS=cpu or GPO_WASM_PATHS=webgpu gpo-wasm/ci.sh)");
}
console.log(failures ? `${failures} FAILED` : "browser tests passed");
process.exit(failures ? 1 : 0);
