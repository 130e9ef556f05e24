use optim.sgd

# A list of submodules indexed past its end, and a list length that is not
# a compile-time integer.
model Lin(n: int) {
    w: f32[n, n] = glorot_uniform()

    fn __call__(self, x) = x @ self.w
}

model Chain(layers: int = 2) {
    blocks: [Lin(4); layers]
    bad: [Lin(4); 1.5]

    fn __call__(self, x: f32[B, 4]) = self.blocks[2](x)

    fn training_step(self, x: f32[B, 4], y: i32[B]) -> f32 = sum(self(x))

    fn configure_optimizers(self) = sgd(lr = 0.1)
}
