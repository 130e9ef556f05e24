//! Splitting an emitted PTX module into several smaller modules.
//!
//! Consumes the module text `ptx::emit` produced (a header, then one
//! `.visible .entry` kernel after another, with no shared `.func`s);
//! produces up to `parts` modules, each the header plus a run of kernels of
//! similar total size, with the names of its kernels. The CUDA runtime
//! JIT-compiles the parts on parallel threads: the driver compiles one
//! module on one thread, and a training step has hundreds of kernels.

const ENTRY: &str = ".visible .entry ";

/// The header and each kernel's `(text, name)`.
pub(super) fn kernels(ptx: &str) -> (&str, Vec<(&str, String)>) {
    let first = ptx.find(ENTRY).unwrap_or(ptx.len());
    let mut kernels = Vec::new();
    let mut rest = &ptx[first..];
    while !rest.is_empty() {
        let end = rest[ENTRY.len()..].find(ENTRY).map_or(rest.len(), |i| i + ENTRY.len());
        let text = &rest[..end];
        let name = text[ENTRY.len()..].split('(').next().unwrap_or("").trim().to_string();
        kernels.push((text, name));
        rest = &rest[end..];
    }
    (&ptx[..first], kernels)
}

/// Up to `parts` modules (at least one), each `(text, kernel names)`, in
/// kernel order; every kernel is in exactly one.
pub fn split_module(ptx: &str, parts: usize) -> Vec<(String, Vec<String>)> {
    let (header, kernels) = kernels(ptx);
    let parts = parts.clamp(1, kernels.len().max(1));
    let total: usize = kernels.iter().map(|(t, _)| t.len()).sum();
    let per_part = total.div_ceil(parts).max(1);
    let mut out: Vec<(String, Vec<String>)> = vec![(header.to_string(), Vec::new())];
    for (text, name) in kernels {
        if out.last().is_some_and(|p| p.0.len() - header.len() >= per_part) {
            out.push((header.to_string(), Vec::new()));
        }
        let part = out.last_mut().expect("one part at least");
        part.0.push_str(text);
        part.1.push(name);
    }
    out
}
