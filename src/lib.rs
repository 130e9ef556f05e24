//! JaxLightning: Lightning's structure, JAX's transformations, one compiled step.
pub use compiler;
pub use runtime;
pub use trainer;
