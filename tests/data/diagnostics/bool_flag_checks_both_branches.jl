# A `flag: bool` parameter is a compile-time bool when the caller gives one,
# so `if flag` selects code; checked alone, both branches are checked. A
# tensor of bools does not fit a `bool` parameter.
fn pick(flag: bool, x: f32[N]) -> f32[N] {
    if flag { x } else { sum(x) }
}

fn mask(flag: bool, x: f32[N]) -> f32[N] = where(flag, x, 0.0 * x)

fn main() {
    print(mask(ones((3,)) > 0.5, ones((3,))))
    print(mask(true, ones((3,))))
}
