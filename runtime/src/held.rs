//! Held inputs: values an `Executable` keeps between calls.
//!
//! A training step takes the parameters and optimizer states and returns
//! their new values, which are the next step's inputs. Passing them through
//! the host every step costs a copy in and out; on a GPU that copy (over
//! PCIe) costs more than the step itself. So the caller can *hold* inputs:
//! give them once (`Executable::hold`), name which outputs *carry* into
//! which held inputs after each call, then pass only the other ("fresh")
//! inputs per call (`Executable::run_held`) and read a held value back only
//! when it needs it (`Executable::held_value`: checkpoints, validation).
//!
//! This file owns the bookkeeping every engine shares (which inputs are
//! held, the carry pairs, and checking both); where the held values live is
//! the engine's business: host tensors for the CPU engines, device buffers
//! for CUDA.

use compiler::ir::{Func, Tensor};

use crate::Error;

/// Which inputs are held and which outputs carry into them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Holding {
    /// `held[i]`: input `i` is held (not passed per call).
    pub held: Vec<bool>,
    /// `(output, input)`: after each call, output `output` becomes the value
    /// of held input `input`; it is not returned to the caller.
    pub carry: Vec<(usize, usize)>,
    /// The outputs returned per call, in order (those neither carried,
    /// kept nor recorded).
    pub returned: Vec<usize>,
    /// Outputs left where the engine computed them (on the device, for
    /// CUDA), read on demand by `Executable::kept_output`.
    pub kept: Vec<usize>,
    /// Outputs appended, call after call, to a record the caller reads
    /// when it chooses (`Executable::take_recorded`): a training loop's
    /// logged values, read every few steps instead of waiting for every
    /// step (on a GPU, a read waits for the device to finish).
    pub recorded: Vec<usize>,
    /// The fresh inputs, in the order `run_held` takes them.
    pub fresh: Vec<usize>,
}

impl Holding {
    /// Checks a request against `func`'s signature: held inputs and carry
    /// pairs in range, each input held once, carried outputs of the held
    /// input's type, each held input carried into at most once.
    pub fn new(func: &Func, held_inputs: &[usize], carry: &[(usize, usize)]) -> Result<Holding, Error> {
        let bad = |msg: String| Err(Error::Holding(msg));
        let (n_in, n_out) = (func.n_params, func.outputs.len());
        let mut held = vec![false; n_in];
        for &i in held_inputs {
            if i >= n_in {
                return bad(format!("held input {i} out of range (the program takes {n_in} inputs)"));
            }
            if held[i] {
                return bad(format!("input {i} is held twice"));
            }
            held[i] = true;
        }
        let (in_types, out_types) = (func.param_types(), func.output_types());
        let mut carried_into = vec![false; n_in];
        let mut carried_out = vec![false; n_out];
        for &(o, i) in carry {
            if o >= n_out {
                return bad(format!("carried output {o} out of range (the program has {n_out} outputs)"));
            }
            if i >= n_in || !held[i] {
                return bad(format!("output {o} carries into input {i}, which is not held"));
            }
            if carried_into[i] {
                return bad(format!("two outputs carry into input {i}"));
            }
            if carried_out[o] {
                return bad(format!("output {o} carries into two inputs"));
            }
            if out_types[o] != in_types[i] {
                return bad(format!("output {o} has type {} but input {i} has type {}", out_types[o], in_types[i]));
            }
            carried_into[i] = true;
            carried_out[o] = true;
        }
        Ok(Holding {
            returned: (0..n_out).filter(|&o| !carried_out[o]).collect(),
            fresh: (0..n_in).filter(|&i| !held[i]).collect(),
            kept: Vec::new(),
            recorded: Vec::new(),
            held,
            carry: carry.to_vec(),
        })
    }
}

impl Holding {
    /// Keeps `outputs` (returned ones) instead of returning them.
    pub fn keep(&mut self, outputs: &[usize]) -> Result<(), Error> {
        self.take_returned(outputs, "kept")?;
        self.kept.extend(outputs);
        Ok(())
    }

    /// Records `outputs` (returned ones, each once) instead of returning
    /// them, in this order.
    pub fn record(&mut self, outputs: &[usize]) -> Result<(), Error> {
        self.take_returned(outputs, "recorded")?;
        self.recorded.extend(outputs);
        Ok(())
    }

    fn take_returned(&mut self, outputs: &[usize], what: &str) -> Result<(), Error> {
        for (k, &o) in outputs.iter().enumerate() {
            if !self.returned.contains(&o) || outputs[..k].contains(&o) {
                return Err(Error::Holding(format!(
                    "output {o} cannot be {what}: it is carried, kept, recorded, named twice or out of range"
                )));
            }
        }
        self.returned.retain(|o| !outputs.contains(o));
        Ok(())
    }
}

/// The CPU engines' held values: host tensors, moved into the input list
/// for a call and moved back (or replaced by the carried outputs) after it.
#[derive(Default)]
pub(crate) struct HostHeld {
    pub(crate) values: Vec<Option<Tensor>>,
    /// The kept outputs of the last call, by output index.
    pub(crate) kept: Vec<Option<Tensor>>,
    /// The recorded outputs of each call since the last
    /// `Executable::take_recorded`, one row per call.
    pub(crate) recorded: Vec<Vec<Tensor>>,
    /// Tensors the last call displaced (held values replaced by carried
    /// outputs, the kept outputs before it): the JIT writes the next call's
    /// outputs into them instead of fresh allocations, whose first touch
    /// costs a page fault per 4 KiB (~10% of a W4 step on the CPU).
    pub(crate) spare: Vec<Tensor>,
    /// A call's input list, output list and output slots, kept between
    /// calls for their capacity (a steady-state call allocates nothing).
    pub(crate) inputs: Vec<Tensor>,
    pub(crate) outputs: Vec<Tensor>,
    slots: Vec<Option<Tensor>>,
}

impl HostHeld {
    /// The full input list into `inputs` (cleared first): held values
    /// (moved out of `self`) and `fresh`.
    pub(crate) fn assemble_into(
        &mut self,
        holding: &Holding,
        fresh: impl IntoIterator<Item = Tensor>,
        inputs: &mut Vec<Tensor>,
    ) {
        let mut fresh = fresh.into_iter();
        inputs.clear();
        inputs.extend((0..holding.held.len()).map(|i| {
            if holding.held[i] {
                self.values[i].take().expect("held value present between calls")
            } else {
                fresh.next().expect("fresh inputs counted by the caller")
            }
        }));
    }

    /// After a failed call: puts the held inputs back and the fresh ones
    /// into `fresh` (cleared first), so the holding stays usable.
    pub(crate) fn restore(&mut self, holding: &Holding, inputs: &mut Vec<Tensor>, fresh: &mut Vec<Tensor>) {
        fresh.clear();
        for (i, t) in inputs.drain(..).enumerate() {
            if holding.held[i] {
                self.values[i] = Some(t);
            } else {
                fresh.push(t);
            }
        }
    }

    /// Puts the held inputs back and the fresh ones into `fresh`, replaces
    /// the carried inputs with their new values, keeps the kept outputs,
    /// and moves the others into `returned` (both cleared first). Empties
    /// `inputs` and `outputs`, keeping their capacity.
    pub(crate) fn settle_into(
        &mut self,
        holding: &Holding,
        inputs: &mut Vec<Tensor>,
        outputs: &mut Vec<Tensor>,
        fresh: &mut Vec<Tensor>,
        returned: &mut Vec<Tensor>,
    ) {
        self.restore(holding, inputs, fresh);
        let mut slots = std::mem::take(&mut self.slots);
        slots.clear();
        slots.extend(outputs.drain(..).map(Some));
        self.spare.clear();
        for &(o, i) in &holding.carry {
            let old = std::mem::replace(&mut self.values[i], slots[o].take());
            self.spare.extend(old);
        }
        for old in &mut self.kept {
            self.spare.extend(old.take());
        }
        self.kept.resize_with(slots.len(), || None);
        for &o in &holding.kept {
            self.kept[o] = slots[o].take();
        }
        if !holding.recorded.is_empty() {
            self.recorded.push(holding.recorded.iter().map(|&o| slots[o].take().expect("recorded output")).collect());
        }
        returned.clear();
        returned.extend(holding.returned.iter().map(|&o| slots[o].take().expect("returned output")));
        self.slots = slots;
    }
}
