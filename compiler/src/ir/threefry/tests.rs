//! threefry2x32 against the Random123 known-answer vectors and JAX's own
//! outputs (`jax_reference.txt`, made by `jax_reference.py`), bit for bit.

use super::*;

#[test]
fn random123_known_answers() {
    // From Random123's kat_vectors (threefry2x32_20), also in JAX's tests.
    assert_eq!(threefry2x32([0, 0], [0, 0]), [0x6b200159, 0x99ba4efe]);
    assert_eq!(threefry2x32([u32::MAX, u32::MAX], [u32::MAX, u32::MAX]), [0x1cb996fc, 0xbb002be7]);
    assert_eq!(threefry2x32([0x13198a2e, 0x03707344], [0x243f6a88, 0x85a308d3]), [0xc4923a9c, 0x483df7a0]);
}

fn hex32(s: &str) -> u32 {
    u32::from_str_radix(s, 16).unwrap()
}

#[test]
fn bit_equal_to_jax() {
    let text = include_str!("jax_reference.txt");
    let mut checked = [0usize; 5];
    for (line_no, line) in text.lines().enumerate().filter(|(_, l)| !l.starts_with('#')) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let at = format!("jax_reference.txt:{}: {line}", line_no + 1);
        let key = [hex32(words[1]), hex32(words[2])];
        if words[0] == "key" {
            // PRNGKey(seed) for a 32-bit seed is [0, seed] (`random_key` in the language).
            let seed: u32 = words[3].parse().unwrap();
            assert_eq!(key, [0, seed], "{at}");
            checked[0] += 1;
            continue;
        }
        let n: usize = words[3].split(',').map(|d| d.parse::<usize>().unwrap()).product();
        let expected = &words[4..];
        match words[0] {
            "bits" => {
                let mut out = vec![0i32; n];
                fill_bits(key, &mut out);
                let got: Vec<u32> = out.iter().map(|&b| b as u32).collect();
                assert_eq!(got, expected.iter().map(|w| hex32(w)).collect::<Vec<_>>(), "{at}");
                checked[1] += 1;
            }
            "split" => {
                let mut out = vec![0i32; 2 * n];
                fill_split(key, &mut out);
                let got: Vec<u32> = out.iter().map(|&b| b as u32).collect();
                assert_eq!(got, expected.iter().map(|w| hex32(w)).collect::<Vec<_>>(), "{at}");
                checked[2] += 1;
            }
            "uniform_f32" => {
                let mut out = vec![0f32; n];
                fill_uniform_f32(key, &mut out);
                let got: Vec<u32> = out.iter().map(|x| x.to_bits()).collect();
                assert_eq!(got, expected.iter().map(|w| hex32(w)).collect::<Vec<_>>(), "{at}");
                checked[3] += 1;
            }
            "uniform_f64" => {
                let mut out = vec![0f64; n];
                fill_uniform_f64(key, &mut out);
                let got: Vec<u64> = out.iter().map(|x| x.to_bits()).collect();
                let want: Vec<u64> = expected.iter().map(|w| u64::from_str_radix(w, 16).unwrap()).collect();
                assert_eq!(got, want, "{at}");
                checked[4] += 1;
            }
            other => panic!("{at}: unknown kind {other}"),
        }
    }
    assert_eq!(checked, [5, 20, 20, 20, 20], "reference lines per kind");
}

#[test]
fn uniform_is_in_unit_interval() {
    // The mantissa trick maps the extreme bit patterns to 0 and 1 - ulp.
    assert_eq!(uniform_f32(0), 0.0);
    assert_eq!(uniform_f32(u32::MAX), 1.0 - f32::EPSILON);
    assert_eq!(uniform_f64(0), 0.0);
    assert_eq!(uniform_f64(u64::MAX), 1.0 - f64::EPSILON);
}
