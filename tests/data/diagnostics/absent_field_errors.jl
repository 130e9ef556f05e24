use nn.Linear
model M {
    l: Linear(3, 2, use_bias = false)
    fn forward(self, x: f32[B, 3]) -> f32[B, 2] = x @ self.l.weight + self.l.bias
}
model N {
    w: f32[2] = absent(1)
}
