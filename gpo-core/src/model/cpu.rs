//! What the fused CPU training operations share (feature `train`): the backend they serve, the
//! run-time test for it, in-place access to burn-ndarray's f32 buffers and a vectorisable sum.
//!
//! Burn has no per-backend hook for one operation under autodiff short of a backend trait that
//! every generic caller would have to name; the fused operations ([`super::softmax`],
//! [`super::norm`]) are picked by the backend's type at run time instead ([`cast`]), as candle's
//! custom operations pick their kernel by device. Every other backend runs Burn's own operations.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::any::Any;

use burn::tensor::TensorData;
use burn_autodiff::Autodiff;
use burn_ndarray::{NdArray, NdArrayTensor};

/// The CPU training backend whose softmax and LayerNorm are fused.
pub(super) type Train = Autodiff<NdArray<f32>>;

/// Lanes of the partial sums: enough independent accumulators for 256-bit vectors.
pub(super) const LANES: usize = 8;

/// `value` as a `U` when `T` is `U`, else `value` back.
pub(super) fn cast<T: 'static, U: 'static>(value: T) -> Result<U, T> {
    let boxed: Box<dyn Any> = Box::new(value);
    match boxed.downcast::<U>() {
        Ok(u) => Ok(*u),
        Err(boxed) => match boxed.downcast::<T>() {
            Ok(t) => Err(*t),
            Err(_) => unreachable!("a box made from a T holds a T"),
        },
    }
}

/// `value`, known to be a `U` (`T` is `U` once [`cast`] has succeeded on the same types).
pub(super) fn same<T: 'static, U: 'static>(value: T) -> U {
    cast(value).unwrap_or_else(|_| unreachable!("the caller checked that the types are the same"))
}

/// `f` on the values of an f32 ndarray tensor in row-major order, in place (copied first only
/// when they are shared or strided); the tensor back when it is not f32.
pub(super) fn map_f32(tensor: NdArrayTensor, f: impl FnOnce(&mut [f32])) -> Result<NdArrayTensor, NdArrayTensor> {
    let storage = match tensor {
        NdArrayTensor::F32(storage) => storage,
        other => return Err(other),
    };
    let mut array = storage.into_owned();
    if let Some(values) = array.as_slice_mut() {
        f(values);
        return Ok(NdArrayTensor::from(array));
    }
    let shape = array.shape().to_vec();
    let mut values: Vec<f32> = array.iter().copied().collect();
    f(&mut values);
    Ok(NdArrayTensor::from_data(TensorData::new(values, shape)))
}

/// `f` on the values of an f32 ndarray tensor in row-major order (copied only when strided);
/// `None` when it is not f32.
pub(super) fn with_f32<R>(tensor: &NdArrayTensor, f: impl FnOnce(&[f32]) -> R) -> Option<R> {
    let NdArrayTensor::F32(storage) = tensor else { return None };
    let view = storage.view();
    Some(match view.as_slice() {
        Some(values) => f(values),
        None => f(&view.iter().copied().collect::<Vec<f32>>()),
    })
}

/// A new f32 ndarray tensor.
pub(super) fn f32_tensor(values: Vec<f32>, shape: Vec<usize>) -> NdArrayTensor {
    NdArrayTensor::from_data(TensorData::new(values, shape))
}

/// `Σ a_i b_i` (`Σ a_i` without `b`) in [`LANES`] interleaved partial sums: a fixed order
/// (deterministic) that vectorises.
pub(super) fn lane_dot(a: &[f32], b: Option<&[f32]>) -> f32 {
    let mut lanes = [0.0f32; LANES];
    let mut rest = 0.0;
    match b {
        None => {
            let chunks = a.chunks_exact(LANES);
            rest += chunks.remainder().iter().sum::<f32>();
            for c in chunks {
                for (l, &v) in lanes.iter_mut().zip(c) {
                    *l += v;
                }
            }
        }
        Some(b) => {
            let (a, b) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
            rest += a.remainder().iter().zip(b.remainder()).map(|(&x, &y)| x * y).sum::<f32>();
            for (a, b) in a.zip(b) {
                for ((l, &x), &y) in lanes.iter_mut().zip(a).zip(b) {
                    *l += x * y;
                }
            }
        }
    }
    let [a, b, c, d, e, f, g, h] = lanes;
    (((a + e) + (b + f)) + ((c + g) + (d + h))) + rest
}
