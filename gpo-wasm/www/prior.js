// Population priors and baselines computed as gpo-train computes them (gpo-train/src/prior.rs,
// gpo-train/src/eval/baselines.rs), from the answers of the model's prior groups (bank.json's
// `prior_groups`). Shared by the page (app.js) and the browser test (tests/browser.mjs).
//
// `score(key, predicted, truth)` is gpo-train's `EmbeddedSurvey::score`: the survey's alignment
// metric, or null where the question cannot be scored (e.g. a nominal question: ordinal span 0).

/** gpo-train's `score` for a bank: the wasm bindings' alignment metric, null where undefined. */
export function scorer(bank, wasm) {
  const byKey = new Map(bank.questions.map((q) => [q.key, q]));
  const f64 = (v) => new Float64Array(v);
  return (key, predicted, truth) => {
    try {
      return bank.metric === "jensen_shannon"
        ? wasm.jsAlignment(f64(predicted), f64(truth))
        : wasm.wassersteinAlignment(f64(byKey.get(key).ordinal), f64(predicted), f64(truth));
    } catch {
      return null; // gpo_core::metrics returned None
    }
  };
}

function mean(values) {
  let sum = 0;
  for (const v of values) sum += v;
  return values.length ? sum / values.length : null;
}

/** Divides by the sum, or uniform when the sum is not positive and finite (eval::normalise). */
function normalise(scores) {
  let sum = 0;
  for (const s of scores) sum += s;
  if (sum > 0 && Number.isFinite(sum)) return scores.map((s) => s / sum);
  return scores.map(() => 1 / Math.max(scores.length, 1));
}

/** `Σ weight · answer` over the groups that answered `key`, normalised (baselines::weighted_mean). */
export function weightedMean(groups, weights, key, options) {
  const m = new Array(options).fill(0);
  groups.forEach((g, i) => {
    const answer = g.answers[key];
    if (answer) for (let o = 0; o < options; o++) m[o] += weights[i] * answer[o];
  });
  return normalise(m);
}

/** KnnGroups::weights: group h gets exp(−(d_h − min d) / temperature), d_h its mean
 * misalignment (1 − score) with `answers` (key → distribution) over `contextKeys`; groups that
 * share no scored context question get the mean of the known d's. */
export function knnWeights(groups, answers, contextKeys, score, temperature) {
  const distances = groups.map((g) => {
    const gaps = [];
    for (const key of contextKeys) {
      const mine = answers[key], theirs = g.answers[key];
      if (!mine || !theirs) continue;
      const s = score(key, theirs, mine);
      if (s !== null) gaps.push(1 - s);
    }
    return mean(gaps);
  });
  const known = distances.filter((d) => d !== null);
  const fallback = mean(known) ?? 0;
  let best = Infinity;
  for (const d of known) best = Math.min(best, d);
  if (!Number.isFinite(best)) best = 0;
  return distances.map((d) => Math.exp(-((d ?? fallback) - best) / temperature));
}

/** The prior of every question of `keys` (`options(key)`: its option count) for a group whose
 * answers to `contextKeys` are `answers`: `prior` is bank.prior (`{kind: "knn_groups",
 * temperature}` or `{kind: "train_mean"}`). */
export function priors(prior, groups, answers, contextKeys, keys, options, score) {
  const weights = prior.kind === "knn_groups"
    ? knnWeights(groups, answers, contextKeys, score, prior.temperature)
    : groups.map(() => 1);
  return keys.map((key) => weightedMean(groups, weights, key, options(key)));
}
