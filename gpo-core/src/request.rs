//! The request and response of a prediction, as `gpo predict` reads and writes them in JSON and
//! as apps build them: owned questions given by option embeddings, by text and options (embedded
//! by the predictor's sentence encoder, feature `text`), or by key (for the caller to resolve,
//! e.g. `gpo predict --config` from its survey).
//!
//! ```json
//! {"context": [{"text": "…", "options": ["…", "…"], "distribution": [0.3, 0.7]}],
//!  "targets": [{"key": "Q7", "embeddings": [[…], […], […]]}]}
//! ```
//!
//! The response holds one prediction per target, in order, with the target's key, the predicted
//! distribution and, for a prior model, the prior used and where it came from (the keys of the
//! nearest known questions for a question the prior does not know).

use alloc::string::String;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use crate::batch::Side;
use crate::predictor::PredictError;
use crate::prior::{PopulationPrior, PriorSource, PriorValue};

/// One question of a request. Give exactly one of `embeddings` or `text` with `options` (or a
/// `key` alone, for a caller that knows the question by key); a context question also carries the
/// group's answer `distribution`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestQuestion {
    /// The question's key: finds its prior in a prior model, and is echoed in the response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The question's text (with `options`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The option texts (with `text`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<Vec<String>>,
    /// One embedding per option.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embeddings: Option<Vec<Vec<f32>>>,
    /// The group's answer distribution over the options (context questions only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distribution: Option<Vec<f32>>,
}

impl RequestQuestion {
    /// A question given by its text and options.
    pub fn text(text: &str, options: &[&str]) -> Self {
        Self { text: Some(text.into()), options: Some(options.iter().map(|&o| o.into()).collect()), ..Self::default() }
    }

    /// A question given by one embedding per option.
    pub fn embedded(embeddings: Vec<Vec<f32>>) -> Self {
        Self { embeddings: Some(embeddings), ..Self::default() }
    }

    /// A question given by its key alone.
    pub fn by_key(key: &str) -> Self {
        Self { key: Some(key.into()), ..Self::default() }
    }

    /// The same question with its key.
    pub fn with_key(mut self, key: &str) -> Self {
        self.key = Some(key.into());
        self
    }

    /// The same question with the group's answer distribution (for the context).
    pub fn answered(mut self, distribution: &[f32]) -> Self {
        self.distribution = Some(distribution.to_vec());
        self
    }
}

/// A group's context questions (answered) and the target questions to predict.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// The group's answered questions.
    pub context: Vec<RequestQuestion>,
    /// The questions to predict.
    pub targets: Vec<RequestQuestion>,
}

impl Request {
    /// An empty request.
    pub fn new() -> Self {
        Self::default()
    }

    /// The request with one more context question (with its `distribution`).
    pub fn context(mut self, question: RequestQuestion) -> Self {
        self.context.push(question);
        self
    }

    /// The request with one more target question.
    pub fn target(mut self, question: RequestQuestion) -> Self {
        self.targets.push(question);
        self
    }
}

/// Where a prior came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PriorOrigin {
    /// The prior groups' answers to the question itself.
    Answered,
    /// The mean prior of the nearest known questions.
    Nearest,
}

/// The prior a prior model used for one target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponsePrior {
    /// Probability of each option.
    pub distribution: Vec<f64>,
    /// Where it came from.
    pub source: PriorOrigin,
    /// For [`PriorOrigin::Nearest`]: the keys of the known questions whose prior it averages,
    /// nearest first.
    pub nearest: Vec<String>,
    /// For [`PriorOrigin::Nearest`]: the context questions (positions in the request's context)
    /// whose answers it averages: the group's own answers to neighbours it answered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub context: Vec<usize>,
}

impl ResponsePrior {
    /// The response form of `value`, with question keys from `prior`.
    pub fn new(value: &PriorValue, prior: &PopulationPrior) -> Self {
        let (source, nearest) = match &value.source {
            PriorSource::Answered => (PriorOrigin::Answered, Vec::new()),
            PriorSource::Nearest { known, .. } => (
                PriorOrigin::Nearest,
                known.iter().filter_map(|&q| prior.questions().get(q)).map(|q| q.key.clone()).collect(),
            ),
        };
        let context = match &value.source {
            PriorSource::Nearest { context, .. } => context.clone(),
            PriorSource::Answered => Vec::new(),
        };
        Self { distribution: value.distribution.clone(), source, nearest, context }
    }
}

/// The prediction for one target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponsePrediction {
    /// The target's key, if it had one.
    pub key: Option<String>,
    /// Predicted probability of each option.
    pub distribution: Vec<f32>,
    /// For a prior model: the prior used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prior: Option<ResponsePrior>,
}

/// One prediction per target, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// The predictions.
    pub predictions: Vec<ResponsePrediction>,
}

/// The request field of a side: `context` or `targets`.
fn field(side: Side) -> &'static str {
    match side {
        Side::Context => "context",
        Side::Target => "targets",
    }
}

/// Why a request cannot be answered.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// A question is malformed or cannot be resolved.
    #[error("{}[{index}]: {why}", field(*side))]
    Question {
        /// Context or target.
        side: Side,
        /// Index of the question within its side.
        index: usize,
        /// What is wrong.
        why: String,
    },
    /// A question's text cannot be embedded (no encoder, or no options).
    #[error("{0}")]
    Text(String),
    /// The prediction failed.
    #[error(transparent)]
    Predict(#[from] PredictError),
    /// The encoder failed on a question's texts.
    #[cfg(feature = "text")]
    #[error(transparent)]
    Encoder(#[from] crate::text::EncoderError),
    /// The encoder's vectors are not as wide as the model's inputs.
    #[error("the encoder gives {encoder}-d vectors, the model reads {model}-d")]
    EncoderDimension {
        /// The encoder's dimension.
        encoder: usize,
        /// The model's input dimension.
        model: usize,
    },
    /// The encoder gives other inputs than the model was trained on.
    #[error("the model was trained on embeddings of `{model}` (template `{template}`), but the encoder is `{encoder}`")]
    EncoderMismatch {
        /// The model's embedding model.
        model: String,
        /// The model's template (`none` for inputs not made from text).
        template: String,
        /// The encoder's model id.
        encoder: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::Template;
    use crate::{GpoConfig, ModelFile, ModelMetadata, Predictor, Question, WeightDType};
    use alloc::string::ToString;
    use alloc::vec;
    use burn_ndarray::NdArray;

    type B = NdArray<f32>;

    fn predictor() -> Predictor<B> {
        let device = Default::default();
        let config = GpoConfig::new(2).with_d_model(8).with_d_ff(8).with_n_heads(2).with_n_layers(1);
        let model = config.init_seeded::<B>(&device, 5).expect("a model");
        let metadata = ModelMetadata::new("demo/encoder", 2, Some(Template::Gpo));
        let bytes = ModelFile::from_model(&model, &config, metadata, WeightDType::F32, None)
            .and_then(|f| f.to_bytes())
            .expect("encodes");
        Predictor::from_bytes(&bytes, &device).expect("decodes")
    }

    fn request() -> Request {
        Request::new()
            .context(
                RequestQuestion::embedded(vec![vec![1.0, 0.0], vec![0.0, 1.0]]).with_key("C").answered(&[0.2, 0.8]),
            )
            .target(RequestQuestion::embedded(vec![vec![0.5, 0.5], vec![1.0, 0.0], vec![0.0, 1.0]]).with_key("T"))
    }

    #[test]
    fn a_request_gives_what_predict_gives_and_round_trips_through_json() {
        let p = predictor();
        let response = p.answer(&request()).expect("answers");
        let want = p
            .predict(
                &[Question::new(&[1.0, 0.0, 0.0, 1.0]).answer(&[0.2, 0.8])],
                &[Question::new(&[0.5, 0.5, 1.0, 0.0, 0.0, 1.0])],
            )
            .expect("predicts");
        assert_eq!(response.predictions.len(), 1);
        assert_eq!(response.predictions[0].key.as_deref(), Some("T"));
        assert_eq!(response.predictions[0].distribution, want[0].distribution);
        assert_eq!(response.predictions[0].prior, None, "no prior model");
        let json = serde_json::to_string(&request()).expect("serialises");
        assert_eq!(serde_json::from_str::<Request>(&json).expect("parses"), request());
        let out = serde_json::to_value(&response).expect("serialises");
        assert!(out["predictions"][0].get("prior").is_none() && out["predictions"][0]["key"] == "T", "{out}");
    }

    /// Polls `future` to completion on this thread (the NdArray backend's read-back is ready at
    /// once, so a no-op waker suffices).
    fn block_on<F: core::future::Future>(future: F) -> F::Output {
        let mut future = core::pin::pin!(future);
        let mut cx = core::task::Context::from_waker(core::task::Waker::noop());
        loop {
            if let core::task::Poll::Ready(out) = future.as_mut().poll(&mut cx) {
                return out;
            }
        }
    }

    #[test]
    fn the_asynchronous_answer_is_the_answer() {
        let p = predictor();
        let r = request().target(RequestQuestion::embedded(vec![vec![0.3, 0.7], vec![0.9, 0.1]]));
        assert_eq!(block_on(p.answer_async(&r)).expect("answers"), p.answer(&r).expect("answers"));
        let bad = request().target(RequestQuestion::text("Why?", &["Yes", "No"]));
        assert_eq!(
            block_on(p.answer_async(&bad)).expect_err("refused").to_string(),
            p.answer(&bad).expect_err("refused").to_string()
        );
    }

    #[test]
    fn malformed_questions_are_named_by_side_and_index() {
        let p = predictor();
        let fails = |r: Request| p.answer(&r).expect_err("refused").to_string();
        let mut r = request();
        r.context[0].distribution = None;
        assert!(fails(r).starts_with("context[0]: a context question needs"));
        let r = request().target(RequestQuestion::embedded(vec![vec![1.0, 0.0]]).answered(&[1.0]));
        assert!(fails(r).starts_with("targets[1]: a target has a `distribution`"));
        let r = request().target(RequestQuestion::embedded(vec![vec![1.0, 0.0, 3.0]]));
        assert!(fails(r).contains("targets[1]: embeddings[0] has 3 values; the model expects 2"));
        let r = request().target(RequestQuestion::by_key("K"));
        assert!(fails(r).contains("targets[1]: a question given by `key` alone"));
        let r = request().target(RequestQuestion::text("Why?", &["Yes", "No"]));
        assert!(fails(r).contains("targets[1]: a question given by text needs"));
        let mut both = RequestQuestion::text("Why?", &["Yes", "No"]);
        both.embeddings = Some(vec![vec![0.0, 1.0], vec![1.0, 0.0]]);
        assert!(fails(request().target(both)).contains("targets[1]: give either"));
        let r = request().target(RequestQuestion::embedded(vec![vec![0.0, 1.0]; crate::predictor::MAX_OPTIONS + 1]));
        assert!(fails(r).contains("options of a question: 65 is more than the limit of 64"));
        let err = serde_json::from_str::<Request>(r#"{"context": [], "targets": [{"txt": "typo"}]}"#);
        assert!(err.expect_err("unknown fields are refused").to_string().contains("unknown field `txt`"));
    }
}
