//! The `safetensors(...)` data source: two tensors of a `.safetensors` file
//! (`safetensors.numpy.save_file`, `safetensors.torch.save_file`) as inputs
//! and targets, one example per index of the first axis.
//!
//! The `safetensors` crate parses the header (it rejects malformed or
//! overlapping offsets itself); this file turns the two named views into
//! the loader's arrays, with the dtypes the NPY reader accepts:
//!
//! | dtype | stored as |
//! |---|---|
//! | F32, F64, U8 | themselves |
//! | I32 | i32 |
//! | I64 | i32; each value must fit (checked, with its offset) |
//! | BOOL | bool; each byte must be 0 or 1 |

use super::npy::Array;
use super::{DataError, Values};
use safetensors::{Dtype, SafeTensors};

/// Reads tensors `x_key` and `y_key` of a safetensors file's bytes; `name`
/// names the file in errors.
pub fn parse_pair(name: &str, bytes: &[u8], x_key: &str, y_key: &str) -> Result<(Array, Array), DataError> {
    let file = SafeTensors::deserialize(bytes)
        .map_err(|e| DataError::Invalid { path: name.into(), message: format!("not a safetensors file: {e}") })?;
    let get = |key: &str| -> Result<Array, DataError> {
        let view = file.tensor(key).map_err(|_| {
            let mut names = file.names();
            names.sort();
            DataError::Invalid {
                path: name.into(),
                message: format!("no tensor named {key:?}; the file holds {names:?}"),
            }
        })?;
        // The tensor's data is a slice of `bytes`: its offset in the file, for messages.
        let start = (view.data().as_ptr() as usize - bytes.as_ptr() as usize) as u64;
        let at = |i: usize, size: usize, message: String| DataError::At {
            path: format!("{name} (tensor {key:?})"),
            offset: start + (i * size) as u64,
            message,
        };
        let data = view.data();
        let values = match view.dtype() {
            Dtype::F32 => {
                Values::F32(data.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect())
            }
            Dtype::F64 => {
                Values::F64(data.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect())
            }
            Dtype::I32 => {
                Values::I32(data.chunks_exact(4).map(|c| i32::from_le_bytes(c.try_into().unwrap())).collect())
            }
            Dtype::U8 => Values::U8(data.to_vec()),
            Dtype::I64 => {
                let mut out = Vec::with_capacity(data.len() / 8);
                for (i, c) in data.chunks_exact(8).enumerate() {
                    let v = i64::from_le_bytes(c.try_into().unwrap());
                    out.push(i32::try_from(v).map_err(|_| {
                        at(i, 8, format!("int64 value {v} does not fit in i32 (the type batches use for integers)"))
                    })?);
                }
                Values::I32(out)
            }
            Dtype::BOOL => {
                let mut out = Vec::with_capacity(data.len());
                for (i, &b) in data.iter().enumerate() {
                    if b > 1 {
                        return Err(at(i, 1, format!("bool byte {b}: expected 0 or 1")));
                    }
                    out.push(b == 1);
                }
                Values::Bool(out)
            }
            other => {
                return Err(DataError::Invalid {
                    path: format!("{name} (tensor {key:?})"),
                    message: format!(
                        "dtype {other:?} is not read: save it as float32, float64, int32, int64, uint8 or bool"
                    ),
                })
            }
        };
        Ok(Array { dims: view.shape().to_vec(), values })
    };
    let x = get(x_key)?;
    // No targets (`y = false`): `from_arrays`' placeholder.
    let y = if y_key.is_empty() { super::no_targets(&x) } else { get(y_key)? };
    Ok((x, y))
}
