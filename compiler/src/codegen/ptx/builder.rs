//! A tiny PTX assembler-writer: typed virtual registers and instruction text
//! for one kernel, wrapped in a grid-stride loop.
//!
//! Consumes instruction mnemonics from `ptx.rs` and `math.rs`; produces the
//! text of one `.entry`. Registers are virtual (ptxas allocates the real
//! ones), so every value gets a fresh register; declarations are written once
//! the body is complete and the counts are known.

use std::fmt::Write;

/// A PTX register class. Integers of 32 bits (i32, bool as 0/1, indices of
/// small loops) share `B32`; 64-bit indices and pointers use `B64`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    F32,
    F64,
    B32,
    B64,
    Pred,
}

impl Class {
    fn prefix(self) -> &'static str {
        match self {
            Class::F32 => "f",
            Class::F64 => "fd",
            Class::B32 => "r",
            Class::B64 => "rd",
            Class::Pred => "p",
        }
    }
    fn decl(self) -> &'static str {
        match self {
            Class::F32 => ".f32",
            Class::F64 => ".f64",
            Class::B32 => ".b32",
            Class::B64 => ".b64",
            Class::Pred => ".pred",
        }
    }
    const ALL: [Class; 5] = [Class::F32, Class::F64, Class::B32, Class::B64, Class::Pred];
}

/// The PTX immediate for an f64 constant (exact bits, so no decimal rounding).
pub fn imm_f64(v: f64) -> String {
    format!("0d{:016X}", v.to_bits())
}

/// The PTX immediate for an f32 constant.
pub fn imm_f32(v: f32) -> String {
    format!("0f{:08X}", v.to_bits())
}

/// The body of one kernel under construction.
pub struct Kernel {
    name: String,
    n_params: usize,
    counts: [u32; 5],
    labels: u32,
    body: String,
    /// Static `.shared` arrays: (name, bytes), declared at the top.
    shared: Vec<(String, usize)>,
}

impl Kernel {
    /// A kernel taking `n_params` global pointers (`.u64`), output first.
    pub fn new(name: &str, n_params: usize) -> Kernel {
        Kernel { name: name.to_string(), n_params, counts: [0; 5], labels: 0, body: String::new(), shared: Vec::new() }
    }

    /// A fresh register of `class`.
    pub fn reg(&mut self, class: Class) -> String {
        let slot = Class::ALL.iter().position(|&c| c == class).expect("class listed");
        self.counts[slot] += 1;
        format!("%{}{}", class.prefix(), self.counts[slot])
    }

    /// A fresh label name.
    pub fn label(&mut self, what: &str) -> String {
        self.labels += 1;
        format!("$L_{what}_{}", self.labels)
    }

    /// Appends one instruction (without the trailing `;`).
    pub fn ins(&mut self, text: &str) {
        let _ = writeln!(self.body, "\t{text};");
    }

    /// Places a label.
    pub fn place(&mut self, label: &str) {
        let _ = writeln!(self.body, "{label}:");
    }

    /// `d = op a` into a fresh register of `class`.
    pub fn op1(&mut self, op: &str, class: Class, a: &str) -> String {
        let d = self.reg(class);
        self.ins(&format!("{op} {d}, {a}"));
        d
    }

    /// `d = op a, b` into a fresh register of `class`.
    pub fn op2(&mut self, op: &str, class: Class, a: &str, b: &str) -> String {
        let d = self.reg(class);
        self.ins(&format!("{op} {d}, {a}, {b}"));
        d
    }

    /// `d = op a, b, c` into a fresh register of `class`.
    pub fn op3(&mut self, op: &str, class: Class, a: &str, b: &str, c: &str) -> String {
        let d = self.reg(class);
        self.ins(&format!("{op} {d}, {a}, {b}, {c}"));
        d
    }

    /// A static `.shared` array of `bytes` bytes (8-byte aligned); returns
    /// its symbol, whose value (`mov.u32 %r, sym`) is its 32-bit shared
    /// address. Static, because the runtime launches with no dynamic shared
    /// memory.
    pub fn shared(&mut self, what: &str, bytes: usize) -> String {
        let sym = format!("{}_{what}", self.name);
        self.shared.push((sym.clone(), bytes));
        sym
    }

    /// The global address of parameter `k` (a `.u64` register).
    pub fn param_ptr(&mut self, k: usize) -> String {
        assert!(k < self.n_params, "kernel parameter {k} out of range");
        let raw = self.reg(Class::B64);
        self.ins(&format!("ld.param.u64 {raw}, [{}_p{k}]", self.name));
        self.op1("cvta.to.global.u64", Class::B64, &raw)
    }

    /// Emits `for (i = global thread id; i < n; i += grid size) body(i)`,
    /// with `i` a `.u64` register. `n` is a compile-time constant.
    pub fn grid_stride_loop(&mut self, n: u64, body: impl FnOnce(&mut Kernel, &str)) {
        let ctaid = self.op1("mov.u32", Class::B32, "%ctaid.x");
        let ntid = self.op1("mov.u32", Class::B32, "%ntid.x");
        let tid = self.op1("mov.u32", Class::B32, "%tid.x");
        let nctaid = self.op1("mov.u32", Class::B32, "%nctaid.x");
        let base = self.op2("mul.wide.u32", Class::B64, &ctaid, &ntid);
        let tid64 = self.op1("cvt.u64.u32", Class::B64, &tid);
        let i = self.op2("add.u64", Class::B64, &base, &tid64);
        let stride = self.op2("mul.wide.u32", Class::B64, &nctaid, &ntid);
        let (head, done) = (self.label("loop"), self.label("done"));
        self.place(&head);
        let p = self.reg(Class::Pred);
        self.ins(&format!("setp.ge.u64 {p}, {i}, {n}"));
        self.ins(&format!("@{p} bra {done}"));
        body(self, &i);
        self.ins(&format!("add.u64 {i}, {i}, {stride}"));
        self.ins(&format!("bra {head}"));
        self.place(&done);
    }

    /// The finished `.entry` text.
    pub fn finish(self) -> String {
        let mut out = String::new();
        let params: Vec<String> = (0..self.n_params).map(|k| format!("\t.param .u64 {}_p{k}", self.name)).collect();
        let _ = writeln!(out, ".visible .entry {}(\n{}\n)\n{{", self.name, params.join(",\n"));
        for (slot, class) in Class::ALL.iter().enumerate() {
            if self.counts[slot] > 0 {
                let _ = writeln!(out, "\t.reg {} %{}<{}>;", class.decl(), class.prefix(), self.counts[slot] + 1);
            }
        }
        for (sym, bytes) in &self.shared {
            let _ = writeln!(out, "\t.shared .align 8 .b8 {sym}[{bytes}];");
        }
        out.push_str(&self.body);
        out.push_str("\tret;\n}\n");
        out
    }
}
