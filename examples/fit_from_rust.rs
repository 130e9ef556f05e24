//! Driving the trainer from Rust with data made in Rust: a `DataModule`
//! generates the two-moons problem (two interleaved half circles with
//! noise), and `trainer::fit_with_data` trains `examples/moons_mlp.jl` on
//! it, with the file's `trainer` section, logs and checkpoints as `jlc run`
//! would write them.
//!
//! Run: `cargo run --release --example fit_from_rust` (about a second;
//! prints val_acc 0.976, test_acc 0.990 and where the logs went).

use jaxlightning::trainer::{self, Column, DataModule, DataSplits, Dataset, FitOptions, Values};

/// `n` points per moon with Gaussian-ish noise from a seeded generator.
struct TwoMoons {
    n: usize,
    noise: f32,
    seed: u64,
}

impl TwoMoons {
    fn points(&self, n: usize, stream: u64) -> Dataset {
        let mut state = self.seed ^ stream.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let mut uniform = move || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 40) as f32 / (1u64 << 24) as f32
        };
        let (mut xs, mut ys) = (Vec::with_capacity(4 * n), Vec::with_capacity(2 * n));
        for i in 0..2 * n {
            let label = (i % 2) as i32;
            let t = std::f32::consts::PI * uniform();
            let (x, y) = if label == 0 { (t.cos(), t.sin()) } else { (1.0 - t.cos(), 0.5 - t.sin()) };
            // The sum of three uniforms: a cheap bell-shaped noise.
            let mut noise = || self.noise * (uniform() + uniform() + uniform() - 1.5);
            xs.extend([x + noise(), y + noise()]);
            ys.push(label);
        }
        let x = Column::new(Values::F32(xs), vec![2], 1.0);
        let y = Column::new(Values::I32(ys), vec![], 1.0);
        Dataset::new(x, y).expect("whole examples")
    }
}

impl DataModule for TwoMoons {
    fn setup(&mut self) -> Result<DataSplits, String> {
        let mut splits = DataSplits::new(self.points(self.n, 1), 50);
        splits.val = Some(self.points(self.n / 4, 2));
        splits.test = Some(self.points(self.n / 4, 3));
        Ok(splits)
    }

    fn name(&self) -> String {
        format!("two moons ({} points per moon, noise {})", self.n, self.noise)
    }
}

fn main() -> Result<(), trainer::FitError> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/moons_mlp.jl");
    let text = std::fs::read_to_string(path)?;
    let root = std::env::temp_dir().join("jlc-fit-from-rust");
    let opts =
        FitOptions { overrides: vec![format!("trainer.default_root_dir={}", root.display())], ..Default::default() };
    let mut moons = TwoMoons { n: 1000, noise: 0.35, seed: 7 };
    let summary = trainer::fit_with_data(std::path::Path::new(path), &text, &opts, &mut moons)?;
    for (name, value) in summary.final_metrics.iter().chain(&summary.test_metrics) {
        println!("{name} = {value:.4}");
    }
    println!("logs: {}", summary.log_dir.display());
    Ok(())
}
