# Pooling: padding at most half the window (PyTorch's rule), or windows lie wholly in the padding.
fn main() {
    let images = reshape(linspace(0.0, 1.0, 32), (2, 1, 4, 4))
    print(max_pool2d(images, 2, stride = 2, padding = 2), avg_pool2d(images, (3, 2), padding = (1, 2)), max_pool2d(images, 3, padding = 1))
}
