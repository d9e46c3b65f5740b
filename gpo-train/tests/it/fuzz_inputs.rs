//! Hostile input never panics: the Python-literal parser, every survey loader and the embedding
//! cache decoder, fed arbitrary text, arbitrary bytes and mutations of valid inputs (for the cache,
//! also with the checksum repaired, so that the mutations reach the decoder behind it), return a
//! value or an error. A missing file is an error naming it. (Checkpoints are fuzzed the same way
//! inside the crate, `train::checkpoint` tests, since their decoder is internal.)
//!
//! `GPO_FUZZ_CASES=20000 cargo test -p gpo-train --test it fuzz_inputs::` fuzzes longer.

use std::path::Path;

use gpo_train::data::pyliteral::{self, MAX_DEPTH};
use gpo_train::data::{Question, globalopinionqa, notebook, opinionqa, tidy};
use gpo_train::embed::{EmbeddingCache, Precision};
use proptest::prelude::*;
use sha2::{Digest, Sha256};

/// `default` proptest cases, or `GPO_FUZZ_CASES` when set.
fn cases(default: u32) -> ProptestConfig {
    let cases = std::env::var("GPO_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    ProptestConfig { cases, ..ProptestConfig::default() }
}

/// Characters that make up Python literals, so that random strings reach deep into the parser.
const LITERAL_ALPHABET: &[u8] = b"[](){},:'\"\\ \n\t0123456789.eE+-_xuUnaifTrueFalseNone";

/// Valid literals of the kinds found in the survey files.
const VALID_LITERALS: &[&str] = &[
    r#"['Very safe', "Associate's degree", 'a, b', 'it\'s']"#,
    "[1.0, 2, 1.5]",
    "[0.23 0.38\n 0.39]",
    "{1.0: 'Very safe', 99.0: 'Refused'}",
    "('\\u00e9', True, None, -inf, nan)",
    "defaultdict(<class 'list'>, {'Nigeria': [0.5, 0.5], 'Peru': [0.1, 0.9]})",
    "[[[1, [2, {'a': (3,)}]]]]",
    r"'\x41\U0001F600\n'",
];

/// One edit of a byte string: an operation, a position and a byte (from the literal alphabet
/// half the time).
fn edits() -> impl Strategy<Value = Vec<(u8, usize, u8)>> {
    proptest::collection::vec((0u8..3, any::<usize>(), any::<u8>()), 0..12)
}

fn mutate(seed: &[u8], edits: &[(u8, usize, u8)]) -> Vec<u8> {
    let mut bytes = seed.to_vec();
    for &(op, pos, byte) in edits {
        let byte = if byte & 1 == 0 { LITERAL_ALPHABET[usize::from(byte >> 1) % LITERAL_ALPHABET.len()] } else { byte };
        match op {
            0 => {
                let at = pos % (bytes.len() + 1);
                bytes.insert(at, byte);
            }
            1 if !bytes.is_empty() => {
                bytes.remove(pos % bytes.len());
            }
            _ if !bytes.is_empty() => {
                let at = pos % bytes.len();
                bytes[at] = byte;
            }
            _ => {}
        }
    }
    bytes
}

fn literal_text() -> impl Strategy<Value = String> {
    proptest::collection::vec(proptest::sample::select(LITERAL_ALPHABET), 0..200)
        .prop_map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// Every entry point of the parser, which must return without panicking.
fn parse_all(text: &str) {
    let _ = pyliteral::parse(text);
    let _ = pyliteral::parse_str_list(text);
    let _ = pyliteral::parse_num_list(text);
}

proptest! {
    #![proptest_config(cases(512))]

    #[test]
    fn parser_survives_arbitrary_strings(text in any::<String>()) {
        parse_all(&text);
    }

    #[test]
    fn parser_survives_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        parse_all(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn parser_survives_literal_like_strings(text in literal_text()) {
        parse_all(&text);
    }

    #[test]
    fn parser_survives_mutated_literals(
        seed in proptest::sample::select(VALID_LITERALS),
        edits in edits(),
    ) {
        parse_all(&String::from_utf8_lossy(&mutate(seed.as_bytes(), &edits)));
    }

    #[test]
    fn parser_survives_deep_mixed_nesting(opens in proptest::collection::vec(proptest::sample::select(&b"[({"[..]), 1..3000)) {
        let text = String::from_utf8(opens.clone()).unwrap();
        let result = pyliteral::parse(&text);
        prop_assert!(result.is_err());
        if opens.len() > MAX_DEPTH {
            prop_assert!(result.unwrap_err().message.contains("nesting deeper than 128 levels"));
        }
    }
}

#[test]
fn twenty_thousand_levels_are_an_error() {
    for open in ["[", "{", "("] {
        let e = pyliteral::parse(&open.repeat(20_000)).unwrap_err();
        assert!(e.to_string().contains("nesting deeper than 128 levels"), "{e}");
        let closed = format!("{}{}", "[".repeat(20_000), "]".repeat(20_000));
        assert!(pyliteral::parse(&closed).is_err());
    }
}

// ---- loaders -------------------------------------------------------------------------------

const TIDY_QUESTIONS: &str = "key,text,options,ordinal\nQ1,Is it?,\"[\"\"Yes\"\",\"\"No\"\"]\",\"[1,2]\"\n\
                              Q2,Or not?,\"[\"\"A\"\",\"\"B\"\",\"\"C\"\"]\",\"[1,2,3]\"\n";
const TIDY_ANSWERS: &str = "group,attribute,question_key,option_index,probability\nA,X,Q1,0,0.5\nA,X,Q1,1,0.5\n\
                            B,X,Q2,0,0.2\nB,X,Q2,1,0.3\nB,X,Q2,2,0.5\n";
const TIDY_META: &str = r#"{"name": "fuzz", "metric": "wasserstein"}"#;
const INFO_CSV: &str = "key,question,references,option_ordinal\n\
                        Q1,Is it?,\"['Yes', 'No', 'Refused']\",\"[1.0, 2.0]\"\n\
                        Q2,\"Or, not?\",\"['A', 'B']\",[1.0 2.0]\n";
const COUNTS_JSON: &str = r#"{"Q1": {"Dem": {"Yes": 3, "No": 1, "Refused": 2}, "MC_options": [], "Rep": {"yes": 1}}, "Q2": {"Dem": {"A": 1}}}"#;
const NOTEBOOK_CSV: &str =
    "qkey,attribute,group,D_H,R_H\nQ1,POLPARTY,Dem,[0.25 0.75],0.0\nQ2,POLPARTY,Dem,\"[0.5, 0.5]\",0\n";
const GLOBAL_CSV: &str = "question,selections,options,source\n\
                          Q?,\"defaultdict(<class 'list'>, {'Nigeria': [0.5, 0.5], 'Peru': [1, 0]})\",\"['Yes', 'No']\",GAS\n\
                          R?,\"{'Peru': [0.2, 0.3, 0.5]}\",\"[1, 2.5, 'x']\",WVS\n";
const GLOBAL_JSONL: &str = "{\"question\": \"Q?\", \"country\": \"Nigeria\", \"options\": [\"Yes\", \"No\"], \"distribution\": [0.5, 0.5]}\n\
                            \n{\"question\": \"Q?\", \"country\": \"Peru\", \"options\": [\"Yes\", \"No\"], \"distribution\": [3, 1]}\n";

fn notebook_questions() -> Vec<Question> {
    let q = |key: &str, n: usize| Question {
        key: key.into(),
        text: format!("{key}?"),
        options: (0..n).map(|i| format!("o{i}")).collect(),
        ordinal: (1..=n).map(|i| i as f64).collect(),
    };
    vec![q("Q1", 2), q("Q2", 2)]
}

/// Runs every loader on files holding `contents` (one per file the loader reads).
fn load_all(dir: &Path, contents: &[Vec<u8>; 4]) {
    let write = |name: &str, bytes: &[u8]| std::fs::write(dir.join(name), bytes).unwrap();
    write("questions.csv", &contents[0]);
    write("answers.csv", &contents[1]);
    write("survey.json", &contents[2]);
    let _ = tidy::load(dir);
    std::fs::remove_file(dir.join("survey.json")).unwrap();
    let _ = tidy::load(dir);

    let wave = dir.join("wave");
    std::fs::create_dir_all(&wave).unwrap();
    std::fs::write(wave.join("info.csv"), &contents[0]).unwrap();
    std::fs::write(wave.join("POLPARTY_data.json"), &contents[3]).unwrap();
    let _ = opinionqa::load_with_report(dir);
    let _ = opinionqa::load_questions(&wave);

    write("x_default_human.csv", &contents[1]);
    let _ = notebook::load(&dir.join("x_default_human.csv"), &notebook_questions());
    write("global_opinions.csv", &contents[2]);
    let _ = globalopinionqa::load_csv_with_report(&dir.join("global_opinions.csv"));
    write("pairs.jsonl", &contents[3]);
    let _ = globalopinionqa::load_jsonl_with_report(&dir.join("pairs.jsonl"));
}

/// The valid seed files, assigned to the loaders' inputs in turn.
static SEEDS: [&str; 8] =
    [TIDY_QUESTIONS, TIDY_ANSWERS, TIDY_META, INFO_CSV, COUNTS_JSON, NOTEBOOK_CSV, GLOBAL_CSV, GLOBAL_JSONL];

fn file_contents() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300),
        any::<String>().prop_map(String::into_bytes),
        (proptest::sample::select(&SEEDS[..]), edits()).prop_map(|(seed, e)| mutate(seed.as_bytes(), &e)),
        literal_text().prop_map(|t| format!("key,question,references,option_ordinal\nQ1,q,{t},{t}\n").into_bytes()),
    ]
}

#[test]
fn valid_seed_files_load() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
    write("questions.csv", TIDY_QUESTIONS);
    write("answers.csv", TIDY_ANSWERS);
    write("survey.json", TIDY_META);
    tidy::load(dir.path()).unwrap();
    let wave = dir.path().join("wave");
    std::fs::create_dir_all(&wave).unwrap();
    std::fs::write(wave.join("info.csv"), INFO_CSV).unwrap();
    std::fs::write(wave.join("POLPARTY_data.json"), COUNTS_JSON).unwrap();
    assert_eq!(opinionqa::load_with_report(&wave).unwrap().survey.groups.len(), 2);
    write("x_default_human.csv", NOTEBOOK_CSV);
    notebook::load(&dir.path().join("x_default_human.csv"), &notebook_questions()).unwrap();
    write("g.csv", GLOBAL_CSV);
    assert_eq!(globalopinionqa::load_csv(&dir.path().join("g.csv")).unwrap().questions.len(), 2);
    write("g.jsonl", GLOBAL_JSONL);
    assert_eq!(globalopinionqa::load_jsonl(&dir.path().join("g.jsonl")).unwrap().groups.len(), 2);
}

proptest! {
    #![proptest_config(cases(160))]

    #[test]
    fn loaders_survive_arbitrary_files(
        a in file_contents(), b in file_contents(), c in file_contents(), d in file_contents(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        load_all(dir.path(), &[a, b, c, d]);
    }

    #[test]
    fn loaders_survive_mutated_valid_files(e0 in edits(), e1 in edits(), e2 in edits(), e3 in edits()) {
        let dir = tempfile::tempdir().unwrap();
        // Each loader's own valid files, mutated: tidy, then the OpinionQA wave, notebook, GlobalOpinionQA.
        load_all(dir.path(), &[
            mutate(TIDY_QUESTIONS.as_bytes(), &e0),
            mutate(TIDY_ANSWERS.as_bytes(), &e1),
            mutate(TIDY_META.as_bytes(), &e2),
            mutate(COUNTS_JSON.as_bytes(), &e3),
        ]);
        load_all(dir.path(), &[
            mutate(INFO_CSV.as_bytes(), &e0),
            mutate(NOTEBOOK_CSV.as_bytes(), &e1),
            mutate(GLOBAL_CSV.as_bytes(), &e2),
            mutate(GLOBAL_JSONL.as_bytes(), &e3),
        ]);
    }
}

/// A small valid cache file of `precision`: 3 texts of dimension 5.
fn cache_bytes(precision: Precision) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let mut cache = EmbeddingCache::new("org/model", "gpo", 5, precision);
    for (i, text) in ["a", "β", "third text"].iter().enumerate() {
        cache.insert(text, &[0.1 * i as f32, -0.2, 0.3, 1.0, -1.0]).unwrap();
    }
    let path = dir.path().join("c.gpoemb");
    cache.save(&path).unwrap();
    std::fs::read(&path).unwrap()
}

/// Makes the checksum right again for the (mutated) bytes: the container's CRC-32 (version 2), or
/// the trailing sha256 (version 1).
fn repair_checksum(mut bytes: Vec<u8>) -> Vec<u8> {
    if bytes.len() >= 24 && bytes[8..12] == 2u32.to_le_bytes() {
        let crc = crc32fast::hash(&bytes[24..]);
        bytes[20..24].copy_from_slice(&crc.to_le_bytes());
    } else if bytes.len() >= 32 {
        let body = bytes.len() - 32;
        let digest = Sha256::digest(&bytes[..body]);
        bytes[body..].copy_from_slice(&digest);
    }
    bytes
}

/// The same cache in format version 1 (before the container: magic, version, the payload, then
/// the sha256 of all that), as the bundled caches are stored.
fn as_version_1(bytes: &[u8]) -> Vec<u8> {
    let mut v1 = bytes[..8].to_vec();
    v1.extend_from_slice(&1u32.to_le_bytes());
    v1.extend_from_slice(&bytes[24..]);
    let digest = Sha256::digest(&v1);
    v1.extend_from_slice(&digest);
    v1
}

/// Loads `bytes` as a cache: it must decode or give an error naming the file.
fn load_cache(bytes: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fuzzed.gpoemb");
    std::fs::write(&path, bytes).unwrap();
    if let Err(e) = EmbeddingCache::load(&path) {
        assert!(e.to_string().contains("fuzzed.gpoemb"), "{e}");
    }
}

#[test]
fn valid_caches_load_and_a_repaired_checksum_is_accepted() {
    for precision in [Precision::F16, Precision::F32] {
        let bytes = cache_bytes(precision);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.gpoemb");
        std::fs::write(&path, repair_checksum(bytes.clone())).unwrap();
        assert_eq!(EmbeddingCache::load(&path).unwrap().len(), 3);
        // Version 1 files read as the same cache.
        let v2 = EmbeddingCache::load(&path).unwrap();
        std::fs::write(&path, as_version_1(&bytes)).unwrap();
        let v1 = EmbeddingCache::load(&path).unwrap();
        assert_eq!(
            (v1.len(), v1.dim(), v1.model_id(), v1.template_id()),
            (v2.len(), v2.dim(), v2.model_id(), v2.template_id())
        );
        // One flipped bit without the repair is a checksum error.
        let mut bad = bytes;
        bad[40] ^= 1;
        std::fs::write(&path, &bad).unwrap();
        assert!(EmbeddingCache::load(&path).unwrap_err().to_string().contains("checksum"));
    }
}

proptest! {
    #![proptest_config(cases(200))]

    #[test]
    fn cache_decoder_survives_mutations(edits in edits(), f32 in any::<bool>(), repair in any::<bool>(), v1 in any::<bool>()) {
        let seed = cache_bytes(if f32 { Precision::F32 } else { Precision::F16 });
        let seed = if v1 { as_version_1(&seed) } else { seed };
        let bytes = mutate(&seed, &edits);
        load_cache(&if repair { repair_checksum(bytes) } else { bytes });
    }

    #[test]
    fn cache_decoder_survives_arbitrary_headers(
        header in proptest::collection::vec(any::<u8>(), 0..64), tail in 0usize..200,
    ) {
        // The magic and version, then arbitrary sizes and strings, then some of a valid body.
        let seed = cache_bytes(Precision::F16);
        let mut bytes = seed[..12].to_vec();
        bytes.extend_from_slice(&header);
        bytes.extend_from_slice(&seed[12..(12 + tail).min(seed.len())]);
        bytes.extend_from_slice(&[0; 32]);
        load_cache(&repair_checksum(bytes));
    }
}

#[test]
fn hostile_cells_are_errors_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("global_opinions.csv");
    let deep = "[".repeat(20_000);
    std::fs::write(&path, format!("question,selections,options,source\nQ?,\"{{'A': [1]}}\",{deep},GAS\n")).unwrap();
    let e = globalopinionqa::load_csv(&path).unwrap_err().to_string();
    assert!(e.starts_with(&format!("{}:2 [options]", path.display())), "{e}");
    assert!(e.contains("nesting deeper than 128 levels"), "{e}");

    let wave = dir.path().join("wave");
    std::fs::create_dir_all(&wave).unwrap();
    std::fs::write(
        wave.join("info.csv"),
        format!("key,question,references,option_ordinal\nQ1,q,\"['a']\",[1]\nQ2,q,{deep},[1]\n"),
    )
    .unwrap();
    let e = opinionqa::load_questions(&wave).unwrap_err().to_string();
    assert!(e.starts_with(&format!("{}:3 [references]", wave.join("info.csv").display())), "{e}");
}

/// A question with one non-refusal option has nothing to predict: the release loaders skip it
/// with that reason (a tidy survey, the user's own, gets an error: data_tidy.rs).
#[test]
fn one_option_questions_are_skipped_by_the_release_loader() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("info.csv"),
        "key,question,references,option_ordinal\nQ1,q,\"['a', 'Refused']\",[1]\nQ2,r,\"['a', 'b']\",\"[1, 2]\"\n",
    )
    .unwrap();
    let (questions, skipped) = opinionqa::load_questions(dir.path()).unwrap();
    assert_eq!(questions.iter().map(|q| q.key.as_str()).collect::<Vec<_>>(), ["Q2"]);
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert_eq!((skipped[0].key.as_str(), skipped[0].reason), ("Q1", gpo_train::data::SkipReason::OneOption));
}

#[test]
fn missing_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("absent.csv");
    let e = globalopinionqa::load_csv(&missing).unwrap_err().to_string();
    assert_eq!(e, format!("{}: No such file or directory", missing.display()));
    let e = globalopinionqa::load_jsonl(&dir.path().join("absent.jsonl")).unwrap_err().to_string();
    assert_eq!(e, format!("{}: No such file or directory", dir.path().join("absent.jsonl").display()));
    let e = notebook::load(&missing, &[]).unwrap_err().to_string();
    assert_eq!(e, format!("{}: No such file or directory", missing.display()));
    let e = tidy::load(dir.path()).unwrap_err().to_string();
    assert_eq!(e, format!("{}: No such file or directory", dir.path().join("questions.csv").display()));
    let nowhere = dir.path().join("nowhere");
    let e = opinionqa::load(&nowhere).unwrap_err().to_string();
    assert_eq!(e, format!("{}: No such file or directory", nowhere.display()));
    // A folder where a file is expected names it too.
    let e = globalopinionqa::load_csv(dir.path()).unwrap_err().to_string();
    assert!(e.starts_with(&format!("{}: ", dir.path().display())) && !e.contains("malformed"), "{e}");
}
