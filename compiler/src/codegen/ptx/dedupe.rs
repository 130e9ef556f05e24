//! Identical kernels, emitted once.
//!
//! Consumes the module text `emit` built and its launch steps; produces the
//! module with each distinct kernel body once (the first one's name), and
//! the steps renamed to launch it.
//!
//! Why: the driver's JIT compile time grows with the number of kernels
//! (measured with ptxas on W3's 206 kernels: about 11 ms each, whatever the
//! optimization level), and a model repeats itself: every transformer block
//! and its backward emit the same kernels with other names and buffers
//! (W3: 206 kernels, 103 distinct). A kernel's text depends only on its
//! shapes and fused ops, never on its buffers (they are parameters), so
//! two kernels whose text differs only in their name are the same kernel.

use super::split;
use super::Step;
use std::collections::HashMap;

/// `ptx` with duplicate kernels dropped; `steps` launch the kept ones.
pub(super) fn dedupe(ptx: &str, steps: &mut [Step]) -> String {
    let (header, kernels) = split::kernels(ptx);
    let mut out = header.to_string();
    // Body with its own name blanked -> the name it is kept under.
    let mut kept: HashMap<String, String> = HashMap::new();
    let mut renamed: HashMap<String, String> = HashMap::new();
    for (text, name) in kernels {
        // (The last kernel lacks the blank line that separates the others.)
        let body = text.trim_end().replace(&name, "\u{1}");
        match kept.get(&body) {
            Some(first) => {
                renamed.insert(name, first.clone());
            }
            None => {
                out.push_str(text);
                kept.insert(body, name);
            }
        }
    }
    for step in steps {
        if let Step::Kernel { name, .. } = step {
            if let Some(first) = renamed.get(name) {
                *name = first.clone();
            }
        }
    }
    out
}
