const WIDTH = HEIGHT * 2
const HEIGHT = WIDTH + 1

fn f(x: f32[WIDTH]) = x
