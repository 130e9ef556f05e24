//! The seed of a randomized test: new for every run (from the clock), so
//! that each CI run tries other points, and printed by the tests so that a
//! failure can be repeated with `JLC_TEST_SEED=<seed>`.

/// `JLC_TEST_SEED` (decimal or 0x-hex) if set, else one from the clock;
/// printed (a failing test shows its captured output). `salt` keeps the
/// tests of one run on different streams.
pub fn run_seed(salt: u64) -> u64 {
    let seed = chosen_seed(salt);
    eprintln!("seed {seed:#x} (repeat with JLC_TEST_SEED={seed:#x})");
    seed
}

fn chosen_seed(salt: u64) -> u64 {
    if let Ok(v) = std::env::var("JLC_TEST_SEED") {
        let v = v.trim();
        let parsed = match v.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16),
            None => v.parse(),
        };
        return parsed.unwrap_or_else(|_| panic!("JLC_TEST_SEED={v:?}: expected a decimal or 0x-hex u64"));
    }
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    // splitmix64's finalizer: nearby clock readings give unrelated seeds.
    let mut z = (nanos as u64) ^ salt.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
