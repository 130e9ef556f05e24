# Parameter fields: dims known at compile time, and `orthogonal()` for
# matrices only.
model Net(width: int = 4) {
    w: f32[width, Q] = glorot_uniform()
    v: f32[width] = orthogonal()
    b: f32[width]

    fn __call__(self, x: f32[B, width]) -> f32[B, width] = x * self.v + self.b
}

fn main() {
    let net = Net()
    print(net(ones((2, 4))))
}
