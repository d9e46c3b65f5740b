//! Reading the `GpoContext` / `GpoTargets` objects passed from JavaScript, with a clear message
//! for every way they can be wrong.

use js_sys::{Array, ArrayBuffer, Float32Array, Reflect};
use wasm_bindgen::prelude::*;

/// Questions read from JavaScript: option counts, option embeddings, (context only) the
/// concatenated answer distributions, and the questions' keys when given.
pub(crate) struct Questions {
    /// Number of options of each question.
    pub options: Vec<usize>,
    embeddings: Vec<f32>,
    distributions: Option<Vec<f32>>,
    keys: Option<Vec<String>>,
}

impl Questions {
    /// Each question as gpo-core's [`gpo_core::Question`]: embeddings, key and (context) answer.
    pub fn questions(&self, dim: usize) -> Vec<gpo_core::Question<'_>> {
        let mut offset = 0;
        self.options
            .iter()
            .enumerate()
            .map(|(i, &k)| {
                let mut question = gpo_core::Question::new(&self.embeddings[offset * dim..(offset + k) * dim]);
                if let Some(d) = &self.distributions {
                    question = question.answer(&d[offset..offset + k]);
                }
                if let Some(key) = self.keys.as_ref().and_then(|keys| keys.get(i)) {
                    question = question.key(key);
                }
                offset += k;
                question
            })
            .collect()
    }
}

/// Reads `value.embeddings`, `value.options`, when `with_distributions` `value.distributions`, and
/// `value.keys` when present (not `undefined` or `null`), checking that their lengths agree with
/// each other and with the model's dimension `dim`. A `priors` field is refused: the model
/// computes priors itself.
pub(crate) fn read_questions(
    side: &str,
    value: &JsValue,
    dim: usize,
    with_distributions: bool,
) -> Result<Questions, JsError> {
    let fields = if with_distributions { "embeddings, options and distributions" } else { "embeddings and options" };
    if !value.is_object() {
        return Err(JsError::new(&format!("{side} must be an object with {fields}")));
    }
    let field = |name: &str| Reflect::get(value, &name.into()).unwrap_or(JsValue::UNDEFINED);

    let embeddings = field("embeddings")
        .dyn_into::<Float32Array>()
        .map_err(|_| JsError::new(&format!("{side}.embeddings must be a Float32Array")))?
        .to_vec();
    let mut options = Vec::new();
    for (index, count) in numbers(side, "options", &field("options"))?.into_iter().enumerate() {
        if !(count >= 1.0 && count.fract() == 0.0 && count <= u32::MAX as f64) {
            return Err(JsError::new(&format!(
                "{side}.options[{index}] is {count}: each question needs a whole number (≥ 1) of options"
            )));
        }
        options.push(count as usize);
    }
    let n_options: usize = options.iter().sum();
    let expected = n_options.saturating_mul(dim);
    if embeddings.len() != expected {
        let hint = match embeddings.len().checked_div(n_options) {
            Some(per_option) if embeddings.len().is_multiple_of(n_options) => {
                format!(" (that is {per_option} values per option; the model expects dimension {dim})")
            }
            _ => String::new(),
        };
        return Err(JsError::new(&format!(
            "{side}.embeddings has {} values, but {} questions with {n_options} options in all need {n_options} × {dim} = {expected}{hint}",
            embeddings.len(),
            options.len(),
        )));
    }
    let per_option = |name: &str| -> Result<Vec<f32>, JsError> {
        let values = numbers(side, name, &field(name))?;
        if values.len() != n_options {
            return Err(JsError::new(&format!(
                "{side}.{name} has {} values, but the questions have {n_options} options in all",
                values.len()
            )));
        }
        Ok(values.into_iter().map(|v| v as f32).collect())
    };
    let distributions = if with_distributions { Some(per_option("distributions")?) } else { None };
    let priors = field("priors");
    if !(priors.is_undefined() || priors.is_null()) {
        return Err(JsError::new(&format!(
            "{side}.priors: priors are computed by the model from the prior data in its .gpo file; pass `keys` \
             (the questions' keys) instead"
        )));
    }
    let keys_value = field("keys");
    let keys = if keys_value.is_undefined() || keys_value.is_null() {
        None
    } else {
        if !Array::is_array(&keys_value) {
            return Err(JsError::new(&format!("{side}.keys must be an array of strings (one per question)")));
        }
        let keys: Option<Vec<String>> = Array::from(&keys_value).iter().map(|v| v.as_string()).collect();
        let keys = keys.ok_or_else(|| JsError::new(&format!("{side}.keys must hold only strings")))?;
        if keys.len() != options.len() {
            return Err(JsError::new(&format!("{side}.keys has {} keys for {} questions", keys.len(), options.len())));
        }
        Some(keys)
    };
    Ok(Questions { options, embeddings, distributions, keys })
}

/// The numbers of an `Array` or typed array.
fn numbers(side: &str, name: &str, value: &JsValue) -> Result<Vec<f64>, JsError> {
    if !(Array::is_array(value) || ArrayBuffer::is_view(value)) {
        return Err(JsError::new(&format!("{side}.{name} must be an array or a typed array of numbers")));
    }
    Array::from(value)
        .iter()
        .map(|v| v.as_f64())
        .collect::<Option<Vec<f64>>>()
        .ok_or_else(|| JsError::new(&format!("{side}.{name} must hold only numbers")))
}
