//! Reading the `GpoContext` / `GpoTargets` objects passed from JavaScript, with a clear message
//! for every way they can be wrong.

use js_sys::{Array, ArrayBuffer, Float32Array, Reflect};
use wasm_bindgen::prelude::*;

/// Questions read from JavaScript: option counts, option embeddings, and (context only) the
/// concatenated answer distributions.
pub(crate) struct Questions {
    /// Number of options of each question.
    pub options: Vec<usize>,
    embeddings: Vec<f32>,
    distributions: Option<Vec<f32>>,
}

impl Questions {
    /// Each question's embeddings (`options × dim`) and distribution (when read with one).
    pub fn iter(&self, dim: usize) -> impl Iterator<Item = (&[f32], Option<&[f32]>)> {
        let mut offset = 0;
        self.options.iter().map(move |&k| {
            let embeddings = &self.embeddings[offset * dim..(offset + k) * dim];
            let distribution = self.distributions.as_ref().map(|d| &d[offset..offset + k]);
            offset += k;
            (embeddings, distribution)
        })
    }
}

/// Reads `value.embeddings`, `value.options` and, when `with_distributions`, `value.distributions`,
/// checking that their lengths agree with each other and with the model's dimension `dim`.
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
    let distributions = if with_distributions {
        let values = numbers(side, "distributions", &field("distributions"))?;
        if values.len() != n_options {
            return Err(JsError::new(&format!(
                "{side}.distributions has {} values, but the questions have {n_options} options in all",
                values.len()
            )));
        }
        Some(values.into_iter().map(|v| v as f32).collect())
    } else {
        None
    };
    Ok(Questions { options, embeddings, distributions })
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
