//! The tensor IR: SSA functions over concrete shapes and dtypes.
//!
//! `op` lists the primitives, `func` holds functions and builds them,
//! `text` prints them, `parse` reads them back, `verify` checks them and `interp` defines what they mean.
//! Lowering, autodiff, the optimizer and every backend share this one IR.

mod builder_ext;
pub mod custom_vjp;
pub mod dce;
pub mod func;
pub mod generate;
pub mod index_bounds;
pub mod interp;
pub mod interp_window;
pub mod live;
pub mod op;
pub mod parse;
pub mod precision;
pub mod scan;
pub mod scan_prune;
pub mod sum_order;
pub mod tensor;
pub mod text;
pub mod threefry;
pub mod types;
pub mod verify;
mod verify_ext;
pub mod window;

pub use func::{Builder, Func, Inst, ValueId};
pub use op::{Conv, Op, Window};
pub use scan::Scan;
pub use tensor::{Data, Tensor};
pub use types::{DType, Shape, Type};
