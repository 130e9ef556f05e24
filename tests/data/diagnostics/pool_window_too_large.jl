# Pooling: the window must fit in the (padded) input.
fn main() {
    let images = reshape(linspace(0.0, 1.0, 32), (2, 1, 4, 4))
    print(max_pool2d(images, 2), avg_pool2d(images, (2, 5)), max_pool2d(images, 7, padding = 1))
}
