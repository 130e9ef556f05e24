//! Host tensors: the values the interpreter computes and the runtime passes
//! in and out of compiled programs.
//!
//! Data is row-major and dense. Floats of both widths, i32 and bool each have
//! their own storage so that float32 semantics are exact (every f32 result is
//! rounded to f32, never carried in f64).

use super::types::{DType, Shape, Type};

#[derive(Clone, Debug, PartialEq)]
pub enum Data {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I32(Vec<i32>),
    Bool(Vec<bool>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub shape: Shape,
    pub data: Data,
}

impl Tensor {
    pub fn zeros(ty: &Type) -> Tensor {
        let n = ty.shape.num_elements();
        let data = match ty.dtype {
            DType::F32 => Data::F32(vec![0.0; n]),
            DType::F64 => Data::F64(vec![0.0; n]),
            DType::I32 => Data::I32(vec![0; n]),
            DType::Bool => Data::Bool(vec![false; n]),
        };
        Tensor { shape: ty.shape.clone(), data }
    }
    /// # Panics
    /// When `values` does not hold `dims`' product of elements.
    pub fn f32(dims: &[usize], values: Vec<f32>) -> Tensor {
        assert_eq!(dims.iter().product::<usize>(), values.len(), "tensor data length");
        Tensor { shape: Shape(dims.to_vec()), data: Data::F32(values) }
    }
    /// # Panics
    /// When `values` does not hold `dims`' product of elements.
    pub fn f64(dims: &[usize], values: Vec<f64>) -> Tensor {
        assert_eq!(dims.iter().product::<usize>(), values.len(), "tensor data length");
        Tensor { shape: Shape(dims.to_vec()), data: Data::F64(values) }
    }
    /// # Panics
    /// When `values` does not hold `dims`' product of elements.
    pub fn i32(dims: &[usize], values: Vec<i32>) -> Tensor {
        assert_eq!(dims.iter().product::<usize>(), values.len(), "tensor data length");
        Tensor { shape: Shape(dims.to_vec()), data: Data::I32(values) }
    }
    /// # Panics
    /// When `values` does not hold `dims`' product of elements.
    pub fn bool(dims: &[usize], values: Vec<bool>) -> Tensor {
        assert_eq!(dims.iter().product::<usize>(), values.len(), "tensor data length");
        Tensor { shape: Shape(dims.to_vec()), data: Data::Bool(values) }
    }
    pub fn scalar_f32(v: f32) -> Tensor {
        Tensor::f32(&[], vec![v])
    }
    pub fn dtype(&self) -> DType {
        match self.data {
            Data::F32(_) => DType::F32,
            Data::F64(_) => DType::F64,
            Data::I32(_) => DType::I32,
            Data::Bool(_) => DType::Bool,
        }
    }
    pub fn ty(&self) -> Type {
        Type { dtype: self.dtype(), shape: self.shape.clone() }
    }
    /// `self.ty() == *ty` without building the type (no allocation: the
    /// steady-state step loop checks every input with it), for a tensor
    /// that holds its shape's number of values (`shape` and `data` are
    /// public fields: one set by hand can disagree, and compiled code would
    /// then read or write past the data).
    pub fn has_type(&self, ty: &Type) -> bool {
        self.dtype() == ty.dtype && self.shape == ty.shape && self.stored_len() == ty.shape.num_elements()
    }
    /// How many values `data` holds (`len()` is what the shape says).
    pub fn stored_len(&self) -> usize {
        match &self.data {
            Data::F32(v) => v.len(),
            Data::F64(v) => v.len(),
            Data::I32(v) => v.len(),
            Data::Bool(v) => v.len(),
        }
    }
    pub fn len(&self) -> usize {
        self.shape.num_elements()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Every element's exact bits, widened to u64 (NaN payloads and signed
    /// zeros kept): what bitwise-equality tests compare.
    pub fn to_bits_vec(&self) -> Vec<u64> {
        match &self.data {
            Data::F32(v) => v.iter().map(|x| u64::from(x.to_bits())).collect(),
            Data::F64(v) => v.iter().map(|x| x.to_bits()).collect(),
            Data::I32(v) => v.iter().map(|&x| x as u32 as u64).collect(),
            Data::Bool(v) => v.iter().map(|&x| x as u64).collect(),
        }
    }

    /// Every element widened to f64 (bool as 0/1). For tests and printing.
    pub fn to_f64_vec(&self) -> Vec<f64> {
        match &self.data {
            Data::F32(v) => v.iter().map(|&x| x as f64).collect(),
            Data::F64(v) => v.clone(),
            Data::I32(v) => v.iter().map(|&x| x as f64).collect(),
            Data::Bool(v) => v.iter().map(|&x| if x { 1.0 } else { 0.0 }).collect(),
        }
    }
    /// Builds a tensor of `dtype` from f64 values (rounding to the dtype).
    pub fn from_f64(dtype: DType, dims: &[usize], values: &[f64]) -> Tensor {
        let shape = Shape(dims.to_vec());
        assert_eq!(shape.num_elements(), values.len(), "tensor data length");
        let data = match dtype {
            DType::F32 => Data::F32(values.iter().map(|&x| x as f32).collect()),
            DType::F64 => Data::F64(values.to_vec()),
            DType::I32 => Data::I32(values.iter().map(|&x| x as i32).collect()),
            DType::Bool => Data::Bool(values.iter().map(|&x| x != 0.0).collect()),
        };
        Tensor { shape, data }
    }
    /// The single element of a scalar (or one-element) tensor, as f64
    /// (the first element of a larger one; NaN for an empty one), read in place.
    pub fn scalar_value(&self) -> f64 {
        match &self.data {
            Data::F32(v) => v.first().map_or(f64::NAN, |&x| x as f64),
            Data::F64(v) => v.first().copied().unwrap_or(f64::NAN),
            Data::I32(v) => v.first().map_or(f64::NAN, |&x| x as f64),
            Data::Bool(v) => v.first().map_or(f64::NAN, |&x| f64::from(u8::from(x))),
        }
    }
    pub fn as_f32(&self) -> Option<&[f32]> {
        match &self.data {
            Data::F32(v) => Some(v),
            _ => None,
        }
    }
}

impl std::fmt::Display for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let values = self.to_f64_vec();
        // Six decimals, or (as NumPy switches) scientific notation for the
        // whole tensor when a nonzero element would show as 0.000000 or
        // one has more than 8 digits before the point.
        let scientific = self.dtype().is_float()
            && values.iter().any(|x| x.is_finite() && *x != 0.0 && (x.abs() < 1e-4 || x.abs() >= 1e8));
        let fmt_one = |x: f64| match self.dtype() {
            DType::I32 => format!("{}", x as i64),
            DType::Bool => format!("{}", x != 0.0),
            _ if scientific => format!("{x:.6e}"),
            _ => format!("{x:.6}"),
        };
        if self.shape.rank() == 0 {
            return write!(f, "{}", fmt_one(values[0]));
        }
        // Nested brackets, row-major; long tensors are elided in the middle.
        fn rec(
            f: &mut std::fmt::Formatter<'_>,
            dims: &[usize],
            values: &[f64],
            fmt_one: &dyn Fn(f64) -> String,
        ) -> std::fmt::Result {
            write!(f, "[")?;
            let n = dims[0];
            let inner: usize = dims[1..].iter().product();
            for i in 0..n {
                if n > 8 && i == 3 {
                    write!(f, ", ...")?;
                }
                if n > 8 && (3..n - 3).contains(&i) {
                    continue;
                }
                if i > 0 {
                    write!(f, ", ")?;
                }
                if dims.len() == 1 {
                    write!(f, "{}", fmt_one(values[i]))?;
                } else {
                    rec(f, &dims[1..], &values[i * inner..(i + 1) * inner], fmt_one)?;
                }
            }
            write!(f, "]")
        }
        rec(f, self.shape.dims(), &values, &fmt_one)
    }
}

#[cfg(test)]
mod display_tests {
    use super::Tensor;

    #[test]
    fn long_axes_elide_with_separators_and_tiny_values_go_scientific() {
        let t = Tensor::f32(&[10], (0..10).map(|i| i as f32 * 0.5).collect());
        assert_eq!(t.to_string(), "[0.000000, 0.500000, 1.000000, ..., 3.500000, 4.000000, 4.500000]");
        let i = Tensor::i32(&[2, 9], (0..18).collect());
        assert_eq!(i.to_string(), "[[0, 1, 2, ..., 6, 7, 8], [9, 10, 11, ..., 15, 16, 17]]");
        let tiny = Tensor::f32(&[3], vec![1e-8, 2.5e-5, 1.0]);
        assert_eq!(tiny.to_string(), "[1.000000e-8, 2.500000e-5, 1.000000e0]");
        let plain = Tensor::f32(&[2], vec![0.0, -0.25]);
        assert_eq!(plain.to_string(), "[0.000000, -0.250000]", "zeros do not switch the format");
    }
}
