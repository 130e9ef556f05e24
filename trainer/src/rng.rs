//! A small, seeded, counter-free PRNG (SplitMix64) for parameter
//! initialization and data shuffling. Two runs with one seed draw the same
//! numbers on every platform.

#[derive(Clone, Debug)]
pub struct Rng {
    state: u64,
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng { state: seed ^ 0x853c_49e6_748f_ea9b }
    }
    /// An independent stream for a named purpose (e.g. "init", "shuffle").
    pub fn derive(seed: u64, purpose: &str) -> Rng {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in purpose.bytes() {
            h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
        Rng::new(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ h)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1) with 53 random bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn uniform(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * self.next_f64()
    }
    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.next_f64();
        let u2 = self.next_f64();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
    /// A uniformly random permutation of 0..n (Fisher-Yates).
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut p: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = (self.next_u64() % (i as u64 + 1)) as usize;
            p.swap(i, j);
        }
        p
    }
}

/// The random key (`i32[2]`, a raw threefry key) a step method that takes
/// `key` receives at call `counter` of `purpose` ("training_step" counts
/// micro-batches from the start of training, evaluation steps count their
/// batches from the start of the split). A pure function of the seed and
/// the counter, so a resumed run draws exactly the keys the uninterrupted
/// run would, and two validations see the same noise.
pub fn step_key(seed: u64, purpose: &str, counter: u64) -> compiler::ir::Tensor {
    let mut rng = Rng::derive(seed, purpose);
    let base = rng.next_u64();
    let bits = Rng::new(base ^ counter.wrapping_mul(0xd1b5_4a32_d192_ed03)).next_u64();
    compiler::ir::Tensor::i32(&[2], vec![(bits >> 32) as u32 as i32, bits as u32 as i32])
}
