//! `gpo embed`: fill an embedding cache for a survey, or embed a list of texts into `.npy`.

use anyhow::Context;
use std::path::Path;

use gpo_core::text::EncoderDType;
use gpo_train::embed::import::{encode_npy, read_texts_jsonl};
use gpo_train::embed::{EmbeddingCache, Precision, Template, embed_texts, encoder_file};
use gpo_train::fsutil::write_atomic;
use gpo_train::pipeline::{Loader, ensure_cache, load_survey, open_embedder, select_groups};

pub struct EmbedArgs<'a> {
    pub data: Option<&'a Path>,
    pub loader: Option<Loader>,
    pub texts: Option<&'a Path>,
    pub model: &'a Path,
    pub out: &'a Path,
    pub template: Template,
    pub f32: bool,
    pub batch_size: usize,
}

pub fn embed(args: EmbedArgs) -> anyhow::Result<()> {
    match (args.data, args.texts) {
        (Some(data), None) => embed_survey(data, &args),
        (None, Some(texts)) => embed_text_list(texts, &args),
        _ => Err(anyhow::anyhow!("pass exactly one of --data <survey> or --texts <file.jsonl>")),
    }
}

fn embed_survey(source: &Path, args: &EmbedArgs) -> anyhow::Result<()> {
    let loader = args
        .loader
        .or_else(|| Loader::detect(source))
        .ok_or_else(|| anyhow::anyhow!("{}: cannot tell the format; pass --loader", source.display()))?;
    let loaded = load_survey(loader, source, None)?;
    let (survey, report) = select_groups(&loaded, None)?;
    eprint!("{report}");
    let template = args.template;
    if args.f32 && !args.out.exists() {
        // Start an f32 cache; `ensure_cache` keeps the precision of an existing one.
        let (encoder, _) = open_embedder(args.model)?;
        EmbeddingCache::new(encoder.model_id(), template.id(), encoder.dim(), Precision::F32).save(args.out)?;
    }
    let cache = ensure_cache(&survey, template, args.out, Some(args.model), &super::run::TaskBar::default())?;
    println!(
        "{}: {} texts, {}-d, model {}, template {}",
        args.out.display(),
        cache.len(),
        cache.dim(),
        cache.model_id(),
        cache.template_id()
    );
    Ok(())
}

fn embed_text_list(texts_path: &Path, args: &EmbedArgs) -> anyhow::Result<()> {
    let texts = read_texts_jsonl(texts_path)?;
    let (mut encoder, _) = open_embedder(args.model)?;
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let vectors = embed_texts(encoder.as_mut(), &refs, args.batch_size, |_| {})?;
    write_atomic(args.out, &encode_npy(texts.len(), encoder.dim(), &vectors))
        .with_context(|| args.out.display().to_string())?;
    println!("{}: {} × {} f32", args.out.display(), texts.len(), encoder.dim());
    Ok(())
}

/// `gpo embed import`: a cache from vectors made elsewhere.
pub fn import(
    vectors: &Path,
    tensor: Option<&str>,
    texts: &Path,
    model_id: &str,
    template: Template,
    out: &Path,
    f32: bool,
) -> anyhow::Result<()> {
    let precision = if f32 { Precision::F32 } else { Precision::F16 };
    let cache =
        gpo_train::embed::import::import_embeddings(vectors, tensor, texts, model_id, template.id(), precision)?;
    cache.save(out)?;
    println!(
        "{}: {} texts, {}-d, model {model_id}, template {}",
        out.display(),
        cache.len(),
        cache.dim(),
        template.id()
    );
    Ok(())
}

/// `gpo export-encoder`: the encoder at `model` as one encoder file of `dtype`.
pub fn export_encoder(model: &Path, dtype: EncoderDType, out: &Path) -> anyhow::Result<()> {
    let file = encoder_file(model, dtype)?;
    let bytes = file.to_bytes().with_context(|| model.display().to_string())?;
    write_atomic(out, &bytes).with_context(|| out.display().to_string())?;
    let spec = file.spec();
    println!(
        "{}: {} bytes, {dtype}, model {}, {}-d, {} layers, max {} tokens",
        out.display(),
        bytes.len(),
        spec.id,
        spec.config.hidden_size,
        spec.config.num_hidden_layers,
        spec.max_seq_length.map_or_else(|| spec.config.max_position_embeddings.to_string(), |n| n.to_string())
    );
    Ok(())
}
