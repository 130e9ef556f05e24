fn unknown_type(x: f33[3]) -> f32[3] = x

fn unknown_field(x: f32[3]) -> f32[3] = x.foo

const K = 2.0

fn dim_not_int(x: f32[K]) -> f32[3] = x
