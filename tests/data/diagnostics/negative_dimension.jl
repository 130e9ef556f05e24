# A negative compile-time integer is an index or an axis, never a dimension.
const K = -3

fn bad(x: f32[K]) = x
