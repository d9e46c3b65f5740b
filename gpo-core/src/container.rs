//! The sealed container every file gpo stores is wrapped in: magic, format version, payload
//! length and checksum, then the payload.
//!
//! Layout (all integers little-endian):
//!
//! | bytes | content |
//! |---|---|
//! | 8 | magic: the kind of file (`GPOMODEL` for a `.gpo` model, `GPOENCOD` for an encoder file, …) |
//! | 4 | format version of that kind (u32) |
//! | 8 | payload length (u64) |
//! | 4 | CRC-32 (IEEE) of the payload |
//! | n | payload |
//!
//! [`Header::read`] reads the header alone (what `gpo inspect` shows of any file); [`open`] checks
//! a whole file and returns its payload, [`seal`] writes one.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::ops::Range;

/// Bytes before the payload.
pub const HEADER_LEN: usize = 8 + 4 + 8 + 4;

/// A container's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The kind of file.
    pub magic: [u8; 8],
    /// Format version of that kind.
    pub version: u32,
    /// Declared payload length.
    pub length: u64,
    /// Declared CRC-32 of the payload.
    pub crc: u32,
}

/// Why bytes are not a sealed container of the expected kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ContainerError {
    /// Fewer bytes than the header.
    #[error("file is truncated: {0} bytes is shorter than the {HEADER_LEN}-byte header")]
    TooShort(usize),
    /// The magic bytes are another kind's.
    #[error("bad magic bytes")]
    BadMagic {
        /// The magic found.
        found: [u8; 8],
    },
    /// A format version this build does not read.
    #[error("unsupported format version {found}")]
    UnsupportedVersion {
        /// Version in the file.
        found: u32,
    },
    /// The payload length in the header disagrees with the file size.
    #[error("file size mismatch: header declares a {declared}-byte payload, file holds {actual} bytes")]
    Length {
        /// Declared payload length.
        declared: u64,
        /// Bytes present after the header.
        actual: usize,
    },
    /// The payload checksum is wrong.
    #[error("checksum mismatch (file is corrupted): stored {stored:#010x}, computed {computed:#010x}")]
    Checksum {
        /// CRC in the header.
        stored: u32,
        /// CRC of the payload.
        computed: u32,
    },
}

impl Header {
    /// Reads the header at the start of `bytes` (the payload need not follow).
    pub fn read(bytes: &[u8]) -> Result<Self, ContainerError> {
        let header: &[u8; HEADER_LEN] =
            bytes.get(..HEADER_LEN).and_then(|h| h.try_into().ok()).ok_or(ContainerError::TooShort(bytes.len()))?;
        let mut magic = [0u8; 8];
        magic.copy_from_slice(&header[..8]);
        let mut version = [0u8; 4];
        version.copy_from_slice(&header[8..12]);
        let mut length = [0u8; 8];
        length.copy_from_slice(&header[12..20]);
        let mut crc = [0u8; 4];
        crc.copy_from_slice(&header[20..24]);
        Ok(Self {
            magic,
            version: u32::from_le_bytes(version),
            length: u64::from_le_bytes(length),
            crc: u32::from_le_bytes(crc),
        })
    }
}

/// `payload` sealed as a file of kind `magic`, format `version`.
pub fn seal(magic: &[u8; 8], version: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(magic);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// Checks, in this order, that `bytes` hold a header, of kind `magic`, of one of the `versions`,
/// with the declared payload length and checksum; returns the version and the payload.
pub fn open<'a>(bytes: &'a [u8], magic: &[u8; 8], versions: &[u32]) -> Result<(u32, &'a [u8]), ContainerError> {
    let header = Header::read(bytes)?;
    if &header.magic != magic {
        return Err(ContainerError::BadMagic { found: header.magic });
    }
    if !versions.contains(&header.version) {
        return Err(ContainerError::UnsupportedVersion { found: header.version });
    }
    let payload = &bytes[HEADER_LEN..];
    if header.length != payload.len() as u64 {
        return Err(ContainerError::Length { declared: header.length, actual: payload.len() });
    }
    let computed = crc32fast::hash(payload);
    if computed != header.crc {
        return Err(ContainerError::Checksum { stored: header.crc, computed });
    }
    Ok((header.version, payload))
}

/// A field of a payload that does not decode: which, where, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{field}` at byte {offset}: {reason}")]
pub struct FieldError {
    /// The field, as [`FieldSpan::field`] names it.
    pub field: String,
    /// Where it starts in the file (the header included).
    pub offset: usize,
    /// What is wrong.
    pub reason: String,
}

/// A field of a payload and where its bytes lie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldSpan {
    /// The field's path, e.g. `config`, `tensors[3].data`, `prior.questions[7].ordinal[1]`; a
    /// sequence's length is the field `<sequence>.len`.
    pub field: String,
    /// Its bytes, as offsets in the file (the header included).
    pub range: Range<usize>,
}

/// Reads a postcard payload field by field, so that an error names the field and its offset,
/// every sequence length is checked against the bytes left before anything is allocated for it,
/// and (when asked) where each field lies is recorded.
pub(crate) struct FieldReader<'a, 's> {
    payload: &'a [u8],
    at: usize,
    spans: Option<&'s mut Vec<FieldSpan>>,
}

impl<'a, 's> FieldReader<'a, 's> {
    /// A reader at the start of `payload`, recording the fields' spans into `spans` if given.
    pub(crate) fn new(payload: &'a [u8], spans: Option<&'s mut Vec<FieldSpan>>) -> Self {
        Self { payload, at: 0, spans }
    }

    /// The payload offset of the next field.
    pub(crate) fn at(&self) -> usize {
        self.at
    }

    /// An error for the field that starts at payload offset `start`.
    pub(crate) fn error_at(&self, start: usize, field: String, reason: String) -> FieldError {
        FieldError { field, offset: HEADER_LEN + start, reason }
    }

    fn record(&mut self, start: usize, field: impl FnOnce() -> String) {
        if let Some(spans) = self.spans.as_deref_mut() {
            spans.push(FieldSpan { field: field(), range: HEADER_LEN + start..HEADER_LEN + self.at });
        }
    }

    /// One postcard-encoded value (its name is built only for an error or a recorded span).
    pub(crate) fn value<T: serde::de::DeserializeOwned>(
        &mut self,
        field: impl Fn() -> String,
    ) -> Result<T, FieldError> {
        let start = self.at;
        let (value, rest) = postcard::take_from_bytes::<T>(&self.payload[start..])
            .map_err(|e| self.error_at(start, field(), postcard_reason(&e)))?;
        self.at = self.payload.len() - rest.len();
        self.record(start, field);
        Ok(value)
    }

    /// A sequence's length (`what` counts its elements): at most `max`, and at most the bytes
    /// left (every element takes one byte at least).
    pub(crate) fn len(&mut self, field: impl Fn() -> String, max: usize, what: &str) -> Result<usize, FieldError> {
        let start = self.at;
        let n: u64 = self.value(|| format!("{}.len", field()))?;
        let left = self.payload.len() - self.at;
        if n > max as u64 {
            return Err(self.error_at(start, field(), format!("{n} {what}, at most {max}")));
        }
        if n > left as u64 {
            return Err(self.error_at(start, field(), format!("{n} {what} declared, only {left} bytes follow")));
        }
        Ok(n as usize)
    }

    /// A byte string, borrowed from the payload.
    pub(crate) fn bytes(&mut self, field: impl Fn() -> String) -> Result<&'a [u8], FieldError> {
        let n = self.len(&field, usize::MAX, "bytes")?;
        let start = self.at;
        self.at += n;
        self.record(start, field);
        Ok(&self.payload[start..self.at])
    }

    /// Nothing may follow the last field.
    pub(crate) fn finish(&self) -> Result<(), FieldError> {
        match self.payload.len() - self.at {
            0 => Ok(()),
            n => Err(self.error_at(self.at, "end".into(), format!("{n} bytes after the last field"))),
        }
    }
}

/// What a postcard error means for the field being read.
fn postcard_reason(error: &postcard::Error) -> String {
    use postcard::Error as E;
    match error {
        E::DeserializeUnexpectedEnd => "the payload ends inside it".into(),
        E::DeserializeBadVarint => "not a valid variable-length integer".into(),
        E::DeserializeBadBool => "a boolean other than 0 or 1".into(),
        E::DeserializeBadChar => "not a Unicode character".into(),
        E::DeserializeBadUtf8 => "text that is not valid UTF-8".into(),
        E::DeserializeBadOption => "an option tag other than 0 (none) or 1 (some)".into(),
        E::DeserializeBadEnum | E::SerdeDeCustom => {
            "a value its type does not take (an unknown variant or a number out of range)".into()
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAGIC: [u8; 8] = *b"GPOTESTS";

    #[test]
    fn a_sealed_payload_opens_and_every_damage_is_named() {
        let payload = b"the payload";
        let sealed = seal(&MAGIC, 3, payload);
        assert_eq!(sealed.len(), HEADER_LEN + payload.len());
        assert_eq!(open(&sealed, &MAGIC, &[2, 3]), Ok((3, &payload[..])));
        // The header alone, e.g. for `gpo inspect`; the CRC is zlib's crc32 of the payload.
        let header = Header::read(&sealed[..HEADER_LEN]).expect("a header");
        assert_eq!((header.magic, header.version, header.length), (MAGIC, 3, payload.len() as u64));
        // Python: hex(zlib.crc32(b'the payload')).
        assert_eq!(header.crc, 0xd78e_c7cf);

        assert_eq!(open(&sealed[..10], &MAGIC, &[3]), Err(ContainerError::TooShort(10)));
        assert_eq!(open(&sealed, b"GPOMODEL", &[3]), Err(ContainerError::BadMagic { found: MAGIC }));
        assert_eq!(open(&sealed, &MAGIC, &[1, 2]), Err(ContainerError::UnsupportedVersion { found: 3 }));
        assert_eq!(
            open(&sealed[..sealed.len() - 1], &MAGIC, &[3]),
            Err(ContainerError::Length { declared: payload.len() as u64, actual: payload.len() - 1 })
        );
        let mut flipped = sealed.clone();
        *flipped.last_mut().expect("a payload") ^= 1;
        assert!(matches!(open(&flipped, &MAGIC, &[3]), Err(ContainerError::Checksum { .. })));
    }
}
