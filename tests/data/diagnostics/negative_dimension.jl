# A negative compile-time integer is an index or an axis, never a dimension.
const K = -3

fn bad(x: f32[K]) = x

# Integer arrays are i32: a literal beyond it is an error, not a clamp.
fn main() {
    print([3000000000, -1])
}
