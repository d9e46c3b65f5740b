//! Helpers shared by gpo-train's integration tests.

/// The largest absolute difference between two equally long sequences of numbers (f32 or f64,
/// widened to f64): every closeness check of these tests, with its own stated tolerance.
pub fn max_abs_diff<X: Copy + Into<f64>, Y: Copy + Into<f64>>(a: &[X], b: &[Y]) -> f64 {
    assert_eq!(a.len(), b.len(), "sequences of different lengths");
    a.iter().zip(b).map(|(&x, &y)| (x.into() - y.into()).abs()).fold(0.0, f64::max)
}
