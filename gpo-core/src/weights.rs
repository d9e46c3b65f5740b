//! Named access to a module's float parameters, by their module path
//! (`layers.0.attention.query.weight`). Burn's `Linear` stores weights as `[in, out]`.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::{Tensor, TensorData, backend::Backend};

#[cfg(feature = "train")]
use crate::rng::SplitMix64;

/// One parameter tensor with its path and shape; values in row-major order.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    /// Module path, dot-separated.
    pub name: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// Values, row-major.
    pub values: Vec<f32>,
}

/// Why a set of named tensors does not fit a module.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WeightError {
    /// The module has a parameter that the set lacks.
    #[error("missing parameter `{0}`")]
    Missing(String),
    /// The set has a tensor that the module does not.
    #[error("unexpected parameter `{0}`")]
    Unexpected(String),
    /// The set holds a tensor twice.
    #[error("parameter `{0}` is stored twice")]
    Duplicate(String),
    /// A tensor's shape differs from the parameter's.
    #[error("parameter `{name}` has shape {found:?}, expected {expected:?}")]
    Shape {
        /// Parameter path.
        name: String,
        /// Shape in the model.
        expected: Vec<usize>,
        /// Shape in the set.
        found: Vec<usize>,
    },
    /// The number of values does not match the shape.
    #[error("parameter `{name}` has {found} values for shape {shape:?}")]
    Length {
        /// Parameter path.
        name: String,
        /// Declared shape.
        shape: Vec<usize>,
        /// Number of values.
        found: usize,
    },
    /// A value is NaN or infinite.
    #[error("parameter `{0}` holds a non-finite value")]
    NonFinite(String),
}

/// Tracks the module path while a visitor or a mapper walks a module.
#[derive(Default)]
struct PathStack(Vec<String>);

impl PathStack {
    fn enter(&mut self, name: &str) {
        self.0.push(name.to_string());
    }
    fn exit(&mut self) {
        self.0.pop();
    }
    fn name(&self) -> String {
        self.0.join(".")
    }
}

struct Collector {
    path: PathStack,
    tensors: Vec<NamedTensor>,
}

impl<B: Backend> ModuleVisitor<B> for Collector {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.enter(name);
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.exit();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let data = param.val().into_data().convert::<f32>();
        self.tensors.push(NamedTensor {
            name: self.path.name(),
            shape: data.shape.to_vec(),
            values: data.into_vec().unwrap_or_default(),
        });
    }
}

/// All float parameters of `module`, in the module's declaration order.
pub fn named_tensors<B: Backend, M: Module<B>>(module: &M) -> Vec<NamedTensor> {
    let mut collector = Collector { path: PathStack::default(), tensors: Vec::new() };
    module.visit(&mut collector);
    collector.tensors
}

/// Matches `tensors` to a parameter list (`expected`: name and shape, in order): every parameter
/// stored once, with its shape and as many values, and nothing else; the first tensor that is not
/// is named. Returns, per parameter, the index of its tensor. Needs no module (so a file's tensors
/// are checked before any model is built).
pub fn parameter_order(expected: &[(String, Vec<usize>)], tensors: &[NamedTensor]) -> Result<Vec<usize>, WeightError> {
    let mut by_name = BTreeMap::new();
    for (i, t) in tensors.iter().enumerate() {
        if t.shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d)) != Some(t.values.len()) {
            return Err(WeightError::Length { name: t.name.clone(), shape: t.shape.clone(), found: t.values.len() });
        }
        if by_name.insert(t.name.as_str(), i).is_some() {
            return Err(WeightError::Duplicate(t.name.clone()));
        }
    }
    let order = expected
        .iter()
        .map(|(name, shape)| {
            let i = by_name.remove(name.as_str()).ok_or_else(|| WeightError::Missing(name.clone()))?;
            if tensors[i].shape != *shape {
                return Err(WeightError::Shape {
                    name: name.clone(),
                    expected: shape.clone(),
                    found: tensors[i].shape.clone(),
                });
            }
            Ok(i)
        })
        .collect::<Result<Vec<_>, _>>()?;
    match by_name.keys().next() {
        Some(extra) => Err(WeightError::Unexpected(extra.to_string())),
        None => Ok(order),
    }
}

struct Loader<'a> {
    path: PathStack,
    tensors: BTreeMap<&'a str, &'a NamedTensor>,
    used: BTreeSet<&'a str>,
    error: Option<WeightError>,
}

impl<B: Backend> ModuleMapper<B> for Loader<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.enter(name);
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.exit();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        if self.error.is_some() {
            return param;
        }
        let name = self.path.name();
        let Some((&key, &stored)) = self.tensors.get_key_value(name.as_str()) else {
            self.error = Some(WeightError::Missing(name));
            return param;
        };
        let expected = param.val().dims().to_vec();
        if stored.shape != expected {
            self.error = Some(WeightError::Shape { name, expected, found: stored.shape.clone() });
            return param;
        }
        self.used.insert(key);
        param.map(|old| {
            let data = TensorData::new(stored.values.clone(), stored.shape.clone());
            let loaded = Tensor::from_data(data, &old.device());
            if old.is_require_grad() { loaded.require_grad() } else { loaded }
        })
    }
}

#[cfg(feature = "train")]
struct SeededInit {
    path: PathStack,
    rng: SplitMix64,
    fan_in: usize,
}

#[cfg(feature = "train")]
impl<B: Backend> ModuleMapper<B> for SeededInit {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.enter(name);
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.exit();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let leaf = self.path.0.last().map(String::as_str).unwrap_or_default();
        param.map(|old| {
            let shape = old.dims();
            let numel = shape.iter().product::<usize>();
            let values: Vec<f32> = match leaf {
                "gamma" => alloc::vec![1.0; numel],
                "beta" => alloc::vec![0.0; numel],
                _ => {
                    if leaf == "weight" {
                        self.fan_in = shape[0].max(1);
                    }
                    let bound = 1.0 / libm::sqrt(self.fan_in.max(1) as f64);
                    (0..numel).map(|_| ((self.rng.next_f64() * 2.0 - 1.0) * bound) as f32).collect()
                }
            };
            let loaded = Tensor::from_data(TensorData::new(values, shape.to_vec()), &old.device());
            if old.is_require_grad() { loaded.require_grad() } else { loaded }
        })
    }
}

/// Re-draws every float parameter from a generator seeded with `seed`, the same way on every
/// backend and thread (Burn's own initialisers draw from a backend-global RNG). Linear weights
/// (`[in, out]`) and their biases are uniform in `±1/√in`, as PyTorch's default; LayerNorm
/// `gamma` is 1 and `beta` 0. Feature `train`.
#[cfg(feature = "train")]
pub fn reinitialize<B: Backend, M: Module<B>>(module: M, seed: u64) -> M {
    module.map(&mut SeededInit { path: PathStack::default(), rng: SplitMix64::new(seed), fan_in: 1 })
}

/// Replaces every float parameter of `module` with the tensor of the same path in `tensors`.
/// Fails, leaving no partly loaded module behind, unless the set matches the module exactly.
pub fn load_named_tensors<B: Backend, M: Module<B>>(module: M, tensors: &[NamedTensor]) -> Result<M, WeightError> {
    let mut by_name = BTreeMap::new();
    for tensor in tensors {
        let numel = tensor.shape.iter().try_fold(1usize, |n, d| n.checked_mul(*d));
        if numel != Some(tensor.values.len()) {
            return Err(WeightError::Length {
                name: tensor.name.clone(),
                shape: tensor.shape.clone(),
                found: tensor.values.len(),
            });
        }
        if tensor.values.iter().any(|v| !v.is_finite()) {
            return Err(WeightError::NonFinite(tensor.name.clone()));
        }
        if by_name.insert(tensor.name.as_str(), tensor).is_some() {
            return Err(WeightError::Duplicate(tensor.name.clone()));
        }
    }
    let mut loader = Loader { path: PathStack::default(), tensors: by_name, used: BTreeSet::new(), error: None };
    let module = module.map(&mut loader);
    if let Some(error) = loader.error {
        return Err(error);
    }
    match loader.tensors.keys().find(|name| !loader.used.contains(*name)) {
        Some(extra) => Err(WeightError::Unexpected(extra.to_string())),
        None => Ok(module),
    }
}
