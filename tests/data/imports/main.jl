# `jlc run tests/data/imports/main.jl`: imports resolve relative to this file.
use "lib/layers.jl".{scaled, WIDTH}
use "lib/helpers.jl"

fn main() {
    let x = linspace(0.0, 1.0, WIDTH)
    print(scaled(x)[-1], twice(x)[1:3])
}
