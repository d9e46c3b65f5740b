//! The model and optimizer state inside a checkpoint, stored so that loading can never panic.
//!
//! Burn turns a record back into tensors with `Tensor::from_data`, which panics when a shape has
//! the wrong rank or the bytes do not fill it, and its `BinBytesRecorder::load` unwraps decoding
//! errors. So a record is stored here as the postcard encoding of Burn's record *item* (the plain
//! serde form: parameter ids, shapes, dtypes, raw bytes), and before one is decoded it is checked
//! against a *reference* item of the same layout, built from the model being resumed:
//! [`check_layout`] walks the reference with a serde serializer that reads the stored bytes in
//! step, and refuses the stored record unless every sequence length, shape, dtype, enum variant,
//! map key and option matches, every byte buffer has the reference's length, and every parameter
//! id is well formed. Only the float values, the parameter ids and Adam's step counters may
//! differ. A record that passes decodes to tensors of exactly the reference's shapes, so Burn's
//! conversions have nothing to panic on.
//!
//! The optimizer state is a hash map (parameter id → Adam moments) whose serialisation order is
//! arbitrary; it is stored as a list sorted by id, and each stored entry is compared with the
//! reference entry of its id ([`check_entries`]). The reference optimizer state is made by one
//! Adam step with zero gradients on the resumed model (whose ids the stored model record has just
//! restored), which creates the moments of every parameter with its shape.

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{Adam, AdamConfig, GradientsParams, Optimizer};
use burn::record::{FullPrecisionSettings, Record};
use burn::tensor::Tensor;
use burn::tensor::backend::AutodiffBackend;
use gpo_core::Gpo;
use serde::Serialize;

/// The optimizer of every GPO method: Adam with the original's ε.
pub(crate) type GpoOptimizer<B> = OptimizerAdaptor<Adam, Gpo<B>, B>;

/// A fresh [`GpoOptimizer`].
pub(crate) fn new_optimizer<B: AutodiffBackend>() -> GpoOptimizer<B> {
    AdamConfig::new().with_epsilon(1e-8).init::<B, Gpo<B>>()
}

type ModelRecord<B> = <Gpo<B> as Module<B>>::Record;
type ModelItem<B> = <ModelRecord<B> as Record<B>>::Item<FullPrecisionSettings>;
type OptimizerRecord<B> = <GpoOptimizer<B> as Optimizer<Gpo<B>, B>>::Record;
type OptimizerItem<B> = <OptimizerRecord<B> as Record<B>>::Item<FullPrecisionSettings>;
type OptimizerEntry<B> = <OptimizerItem<B> as IntoIterator>::Item;

/// Why a stored record (a model's parameters, an optimizer's state) cannot be written or read.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// It could not be encoded.
    #[error("cannot encode: {0}")]
    Encode(postcard::Error),
    /// The stored bytes do not have the layout of the run's record.
    #[error("{record} record: {error}")]
    Layout {
        /// `model` or `optimizer`.
        record: &'static str,
        /// Where and how.
        error: LayoutError,
    },
    /// The stored bytes do not decode.
    #[error("{record} record: {error}")]
    Decode {
        /// `model` or `optimizer`.
        record: &'static str,
        /// postcard's reason.
        error: postcard::Error,
    },
}

fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, RecordError> {
    postcard::to_allocvec(value).map_err(RecordError::Encode)
}

/// The stored form of `model`'s parameters.
pub(crate) fn model_bytes<B: AutodiffBackend>(model: &Gpo<B>) -> Result<Vec<u8>, RecordError> {
    let item: ModelItem<B> = model.clone().into_record().into_item::<FullPrecisionSettings>();
    encode(&item)
}

/// Loads stored parameters into `template` (a model of the same configuration), after checking
/// that they have its layout.
pub(crate) fn load_model<B: AutodiffBackend>(
    template: Gpo<B>,
    bytes: &[u8],
    device: &B::Device,
) -> Result<Gpo<B>, RecordError> {
    let reference: ModelItem<B> = template.clone().into_record().into_item::<FullPrecisionSettings>();
    check_layout(&reference, bytes).map_err(|error| RecordError::Layout { record: "model", error })?;
    let item: ModelItem<B> =
        postcard::from_bytes(bytes).map_err(|error| RecordError::Decode { record: "model", error })?;
    Ok(template.load_record(<ModelRecord<B> as Record<B>>::from_item::<FullPrecisionSettings>(item, device)))
}

/// The optimizer state as entries sorted by parameter id.
fn sorted_entries<B: AutodiffBackend>(optimizer: &GpoOptimizer<B>) -> Vec<OptimizerEntry<B>> {
    let item: OptimizerItem<B> = optimizer.to_record().into_item::<FullPrecisionSettings>();
    let mut entries: Vec<OptimizerEntry<B>> = item.into_iter().collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    entries
}

/// The stored form of `optimizer`'s state.
pub(crate) fn optimizer_bytes<B: AutodiffBackend>(optimizer: &GpoOptimizer<B>) -> Result<Vec<u8>, RecordError> {
    encode(&sorted_entries(optimizer))
}

/// Registers a zero gradient for every float parameter.
struct ZeroGradients<'a> {
    grads: &'a mut GradientsParams,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for ZeroGradients<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        self.grads.register::<B::InnerBackend, D>(param.id, param.val().inner().zeros_like());
    }
}

/// Loads stored optimizer state for `model` (whose parameter ids it refers to) into `optimizer`,
/// after checking each entry against the state one Adam step gives that parameter of `model`.
pub(crate) fn load_optimizer<B: AutodiffBackend>(
    optimizer: GpoOptimizer<B>,
    model: &Gpo<B>,
    bytes: &[u8],
    device: &B::Device,
) -> Result<GpoOptimizer<B>, RecordError> {
    let mut grads = GradientsParams::new();
    model.visit(&mut ZeroGradients { grads: &mut grads });
    let mut reference = new_optimizer::<B>();
    let _ = reference.step(0.0, model.clone(), grads);
    let record = "optimizer";
    check_entries(&sorted_entries(&reference), bytes).map_err(|error| RecordError::Layout { record, error })?;
    let entries: Vec<OptimizerEntry<B>> =
        postcard::from_bytes(bytes).map_err(|error| RecordError::Decode { record, error })?;
    let item: OptimizerItem<B> = entries.into_iter().collect();
    Ok(optimizer.load_record(<OptimizerRecord<B> as Record<B>>::from_item::<FullPrecisionSettings>(item, device)))
}

/// Checks that `bytes` encodes a list of `(key, value)` entries sorted by key, each key one of
/// `reference`'s and each value of the layout of that key's reference value (a parameter that
/// has had no gradient yet has no optimizer state, so entries may be missing).
pub(crate) fn check_entries<V: Serialize>(reference: &[(String, V)], bytes: &[u8]) -> Result<(), LayoutError> {
    let by_key: std::collections::BTreeMap<&str, &V> = reference.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut checker = LayoutChecker { bytes, pos: 0, context: Context::Exact };
    let entries = checker.varint(10)?;
    if entries > by_key.len() as u128 {
        return Err(LayoutError::TooManyEntries { entries, parameters: by_key.len() });
    }
    let mut previous: Option<String> = None;
    for _ in 0..entries {
        let at = checker.pos;
        let len = usize::try_from(checker.varint(10)?).map_err(|_| LayoutError::OverLong { at })?;
        let key = std::str::from_utf8(checker.take(len)?).map_err(|_| LayoutError::KeyNotUtf8 { at })?.to_string();
        let Some(value) = by_key.get(key.as_str()) else {
            return Err(LayoutError::UnknownKey { key, at });
        };
        if previous.as_ref().is_some_and(|p| *p >= key) {
            return Err(LayoutError::Unsorted { at });
        }
        value.serialize(&mut checker)?;
        previous = Some(key);
    }
    if checker.pos != bytes.len() {
        return Err(LayoutError::Trailing(bytes.len() - checker.pos));
    }
    Ok(())
}

/// Checks that `bytes` is the postcard encoding of a value with the layout of `reference` (see
/// the module documentation for what may differ).
pub(crate) fn check_layout<T: Serialize + ?Sized>(reference: &T, bytes: &[u8]) -> Result<(), LayoutError> {
    let mut checker = LayoutChecker { bytes, pos: 0, context: Context::Exact };
    reference.serialize(&mut checker)?;
    if checker.pos != bytes.len() {
        return Err(LayoutError::Trailing(bytes.len() - checker.pos));
    }
    Ok(())
}

/// What a value may be, by the name of the struct field holding it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    /// Exactly the reference's value.
    Exact,
    /// A parameter id (field `id`): any well-formed id.
    ParamId,
    /// A step counter (field `time` of Adam's moments): any integer.
    Counter,
}

/// Where and how stored bytes depart from a record's layout.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    /// A value other than the reference's.
    #[error("{what} at byte {at} does not match the expected layout")]
    Mismatch {
        /// What kind of value.
        what: &'static str,
        /// Byte offset.
        at: usize,
    },
    /// The bytes end too early.
    #[error("truncated: needs {need} more bytes at byte {at} of {len}")]
    Truncated {
        /// Bytes needed.
        need: usize,
        /// Byte offset.
        at: usize,
        /// Bytes in all.
        len: usize,
    },
    /// An integer or length longer than its type.
    #[error("over-long integer ending at byte {at}")]
    OverLong {
        /// Byte offset.
        at: usize,
    },
    /// More optimizer entries than parameters.
    #[error("{entries} entries, but the model has only {parameters} parameters")]
    TooManyEntries {
        /// Entries stored.
        entries: u128,
        /// Parameters of the model.
        parameters: usize,
    },
    /// A key that is not text.
    #[error("key at byte {at} is not UTF-8")]
    KeyNotUtf8 {
        /// Byte offset.
        at: usize,
    },
    /// State for something that is not a parameter.
    #[error("state for {key:?} (at byte {at}), which is not a parameter of the model")]
    UnknownKey {
        /// The key.
        key: String,
        /// Byte offset.
        at: usize,
    },
    /// Entries out of order.
    #[error("entries not sorted by parameter id at byte {at}")]
    Unsorted {
        /// Byte offset.
        at: usize,
    },
    /// Bytes after the record.
    #[error("{0} bytes after the end of the record")]
    Trailing(usize),
    /// The reference value could not be encoded.
    #[error("cannot encode the reference: {0}")]
    Reference(postcard::Error),
    /// A sequence or map whose length serde does not give.
    #[error("a {0} of unknown length")]
    UnknownLength(&'static str),
    /// serde's own message (its `Error::custom`).
    #[error("{0}")]
    Serde(String),
}

impl serde::ser::Error for LayoutError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        Self::Serde(msg.to_string())
    }
}

/// Walks a reference value, reading the stored bytes in step (postcard's encoding).
struct LayoutChecker<'a> {
    bytes: &'a [u8],
    pos: usize,
    context: Context,
}

type Check = Result<(), LayoutError>;

impl LayoutChecker<'_> {
    fn fail(&self, what: &'static str) -> LayoutError {
        LayoutError::Mismatch { what, at: self.pos }
    }

    fn take(&mut self, n: usize) -> Result<&[u8], LayoutError> {
        let end = self.pos.checked_add(n).filter(|&end| end <= self.bytes.len()).ok_or(LayoutError::Truncated {
            need: n,
            at: self.pos,
            len: self.bytes.len(),
        })?;
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    /// A LEB128 varint of at most `max_bytes` bytes (postcard's integers and lengths).
    fn varint(&mut self, max_bytes: usize) -> Result<u128, LayoutError> {
        let mut value: u128 = 0;
        for i in 0..max_bytes {
            let byte = self.take(1)?[0];
            value |= u128::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(LayoutError::OverLong { at: self.pos })
    }

    /// The stored bytes must equal the reference value's encoding.
    fn exact<T: Serialize + ?Sized>(&mut self, value: &T, what: &'static str) -> Check {
        let expected = postcard::to_allocvec(value).map_err(LayoutError::Reference)?;
        let start = self.pos;
        if self.take(expected.len())? != expected.as_slice() {
            self.pos = start;
            return Err(self.fail(what));
        }
        Ok(())
    }

    /// An integer: the reference's value, or any (well-formed) one for a step counter.
    fn int<T: Serialize>(&mut self, value: T, varint_bytes: usize) -> Check {
        if self.context == Context::Counter && varint_bytes > 1 {
            return self.varint(varint_bytes).map(|_| ());
        }
        self.exact(&value, "integer")
    }

    fn length(&mut self, expected: usize, what: &'static str) -> Check {
        let start = self.pos;
        if self.varint(10)? != expected as u128 {
            self.pos = start;
            return Err(self.fail(what));
        }
        Ok(())
    }

    fn field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Check {
        let saved = self.context;
        self.context = match key {
            "id" => Context::ParamId,
            "time" => Context::Counter,
            _ => Context::Exact,
        };
        let result = value.serialize(&mut *self);
        self.context = saved;
        result
    }
}

impl<'a, 'b> serde::Serializer for &'a mut LayoutChecker<'b> {
    type Ok = ();
    type Error = LayoutError;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    fn is_human_readable(&self) -> bool {
        false
    }

    fn serialize_bool(self, v: bool) -> Check {
        self.exact(&v, "boolean")
    }
    fn serialize_i8(self, v: i8) -> Check {
        self.int(v, 1)
    }
    fn serialize_i16(self, v: i16) -> Check {
        self.int(v, 3)
    }
    fn serialize_i32(self, v: i32) -> Check {
        self.int(v, 5)
    }
    fn serialize_i64(self, v: i64) -> Check {
        self.int(v, 10)
    }
    fn serialize_i128(self, v: i128) -> Check {
        self.int(v, 19)
    }
    fn serialize_u8(self, v: u8) -> Check {
        self.int(v, 1)
    }
    fn serialize_u16(self, v: u16) -> Check {
        self.int(v, 3)
    }
    fn serialize_u32(self, v: u32) -> Check {
        self.int(v, 5)
    }
    fn serialize_u64(self, v: u64) -> Check {
        self.int(v, 10)
    }
    fn serialize_u128(self, v: u128) -> Check {
        self.int(v, 19)
    }
    fn serialize_f32(self, _: f32) -> Check {
        self.take(4).map(|_| ())
    }
    fn serialize_f64(self, _: f64) -> Check {
        self.take(8).map(|_| ())
    }
    fn serialize_char(self, v: char) -> Check {
        self.exact(&v, "character")
    }
    fn serialize_str(self, v: &str) -> Check {
        if self.context != Context::ParamId {
            return self.exact(v, "string");
        }
        // Any id Burn can read back: same length as the reference's (13 base-32 characters for
        // 8 bytes; `ParamId::try_deserialize` would index out of bounds on longer ones).
        self.length(v.len(), "parameter id length")?;
        let start = self.pos;
        let raw = self.take(v.len())?;
        let valid = std::str::from_utf8(raw).ok().and_then(ParamId::try_deserialize).is_some();
        if !valid {
            self.pos = start;
            return Err(self.fail("parameter id"));
        }
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Check {
        self.length(v.len(), "byte buffer length")?;
        self.take(v.len()).map(|_| ())
    }
    fn serialize_none(self) -> Check {
        self.exact(&0u8, "absent optional value")
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Check {
        self.exact(&1u8, "present optional value")?;
        value.serialize(self)
    }
    fn serialize_unit(self) -> Check {
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Check {
        Ok(())
    }
    fn serialize_unit_variant(self, _: &'static str, index: u32, _: &'static str) -> Check {
        self.exact(&index, "enum variant")
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, value: &T) -> Check {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        index: u32,
        _: &'static str,
        value: &T,
    ) -> Check {
        self.exact(&index, "enum variant")?;
        value.serialize(self)
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Self, LayoutError> {
        let len = len.ok_or(LayoutError::UnknownLength("sequence"))?;
        self.length(len, "sequence length")?;
        Ok(self)
    }
    fn serialize_tuple(self, _: usize) -> Result<Self, LayoutError> {
        Ok(self)
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self, LayoutError> {
        Ok(self)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        index: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self, LayoutError> {
        self.exact(&index, "enum variant")?;
        Ok(self)
    }
    fn serialize_map(self, len: Option<usize>) -> Result<Self, LayoutError> {
        let len = len.ok_or(LayoutError::UnknownLength("map"))?;
        self.length(len, "map length")?;
        Ok(self)
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self, LayoutError> {
        Ok(self)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        index: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self, LayoutError> {
        self.exact(&index, "enum variant")?;
        Ok(self)
    }
}

impl serde::ser::SerializeSeq for &mut LayoutChecker<'_> {
    type Ok = ();
    type Error = LayoutError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Check {
        value.serialize(&mut **self)
    }
    fn end(self) -> Check {
        Ok(())
    }
}

impl serde::ser::SerializeTuple for &mut LayoutChecker<'_> {
    type Ok = ();
    type Error = LayoutError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Check {
        value.serialize(&mut **self)
    }
    fn end(self) -> Check {
        Ok(())
    }
}

impl serde::ser::SerializeTupleStruct for &mut LayoutChecker<'_> {
    type Ok = ();
    type Error = LayoutError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Check {
        value.serialize(&mut **self)
    }
    fn end(self) -> Check {
        Ok(())
    }
}

impl serde::ser::SerializeTupleVariant for &mut LayoutChecker<'_> {
    type Ok = ();
    type Error = LayoutError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Check {
        value.serialize(&mut **self)
    }
    fn end(self) -> Check {
        Ok(())
    }
}

impl serde::ser::SerializeMap for &mut LayoutChecker<'_> {
    type Ok = ();
    type Error = LayoutError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Check {
        key.serialize(&mut **self)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Check {
        value.serialize(&mut **self)
    }
    fn end(self) -> Check {
        Ok(())
    }
}

impl serde::ser::SerializeStruct for &mut LayoutChecker<'_> {
    type Ok = ();
    type Error = LayoutError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Check {
        self.field(key, value)
    }
    fn end(self) -> Check {
        Ok(())
    }
}

impl serde::ser::SerializeStructVariant for &mut LayoutChecker<'_> {
    type Ok = ();
    type Error = LayoutError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Check {
        self.field(key, value)
    }
    fn end(self) -> Check {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, serde::Deserialize, Clone, PartialEq, Debug)]
    struct Tensorish {
        id: String,
        shape: Vec<usize>,
        #[serde(with = "serde_bytes_like")]
        bytes: Vec<u8>,
        time: usize,
        kind: Option<u8>,
        scale: f32,
    }

    /// `serialize_bytes` like Burn's tensor bytes.
    mod serde_bytes_like {
        pub fn serialize<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(v)
        }
        pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
            struct V;
            impl serde::de::Visitor<'_> for V {
                type Value = Vec<u8>;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("bytes")
                }
                fn visit_bytes<E>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                    Ok(v.to_vec())
                }
            }
            d.deserialize_bytes(V)
        }
    }

    fn reference() -> Vec<Tensorish> {
        vec![Tensorish {
            id: ParamId::new().serialize(),
            shape: vec![2, 3],
            bytes: vec![0; 24],
            time: 1,
            kind: Some(4),
            scale: 1.0,
        }]
    }

    #[test]
    fn values_ids_and_counters_may_differ_nothing_else() {
        let r = reference();
        let mut other = r.clone();
        other[0].id = ParamId::new().serialize();
        other[0].bytes = vec![7; 24];
        other[0].time = 123_456;
        other[0].scale = -3.5;
        let bytes = postcard::to_allocvec(&other).unwrap();
        check_layout(&r, &bytes).unwrap();
        let round: Vec<Tensorish> = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(round, other);

        let refused = |change: &dyn Fn(&mut Tensorish)| {
            let mut bad = r.clone();
            change(&mut bad[0]);
            check_layout(&r, &postcard::to_allocvec(&bad).unwrap()).unwrap_err()
        };
        refused(&|t| t.shape = vec![3, 2]);
        refused(&|t| t.shape = vec![6]);
        refused(&|t| t.bytes = vec![0; 23]);
        refused(&|t| t.kind = None);
        refused(&|t| t.kind = Some(5));
        refused(&|t| t.id = "not an id at all".into());
        refused(&|t| t.id = "!!!!!!!!!!!!!".into());
        let e = check_layout(&r, &postcard::to_allocvec(&Vec::<Tensorish>::new()).unwrap()).unwrap_err().to_string();
        assert!(e.contains("sequence length"), "{e}");
    }

    #[test]
    fn entries_are_checked_by_key() {
        let r: Vec<(String, Tensorish)> =
            vec![("a".into(), reference()[0].clone()), ("b".into(), reference()[0].clone())];
        let encode = |v: &Vec<(String, Tensorish)>| postcard::to_allocvec(v).unwrap();
        check_entries(&r, &encode(&r)).unwrap();
        check_entries(&r, &encode(&r[1..].to_vec())).unwrap();
        check_entries(&r, &encode(&vec![])).unwrap();
        let unknown = vec![("c".to_string(), reference()[0].clone())];
        assert!(check_entries(&r, &encode(&unknown)).unwrap_err().to_string().contains("not a parameter"));
        let unsorted = vec![r[1].clone(), r[0].clone()];
        assert!(check_entries(&r, &encode(&unsorted)).unwrap_err().to_string().contains("sorted"));
        let twice = vec![r[0].clone(), r[0].clone()];
        assert!(check_entries(&r, &encode(&twice)).is_err());
        let mut bad = r.clone();
        bad[1].1.shape = vec![6];
        assert!(check_entries(&r, &encode(&bad)).is_err());
        let bytes = encode(&r);
        assert!(check_entries(&r, &vec![0xff; bytes.len()]).is_err());
        for cut in 0..bytes.len() {
            assert!(check_entries(&r, &bytes[..cut]).is_err(), "truncated at {cut}");
        }
    }

    #[test]
    fn zeroed_truncated_and_padded_records_are_refused() {
        let r = reference();
        let bytes = postcard::to_allocvec(&r).unwrap();
        assert!(check_layout(&r, &vec![0; bytes.len()]).is_err());
        for cut in 0..bytes.len() {
            assert!(check_layout(&r, &bytes[..cut]).is_err(), "truncated at {cut}");
        }
        let mut padded = bytes.clone();
        padded.push(0);
        assert!(check_layout(&r, &padded).unwrap_err().to_string().contains("after the end"));
        assert!(check_layout(&r, &[0xff; 40]).is_err());
    }
}
