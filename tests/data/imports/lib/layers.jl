use "helpers.jl".twice

const WIDTH = 5

fn scaled(x: f32[WIDTH]) -> f32[WIDTH] = twice(x) + 1.0
