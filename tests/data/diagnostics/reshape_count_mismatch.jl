# A reshape whose known dims do not divide the element count.
fn images(x: f32[B, 784]) = reshape(x, (-1, 3, 28, 28))

fn flat(x: f32[4, 10]) = reshape(x, (3, 13))
