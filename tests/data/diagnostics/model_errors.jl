model Block {
    w: f32[3] = 1.0
    n: i32[3] = zeros()

    fn forward(self, x: f32[3]) -> f32[3] = x * self.u
}

model NoCall(width: int = 3) {
    fn size(self) = self.width
}

fn main() {
    let b = Block()
    let n = NoCall()
    print(b(linspace(0.0, 1.0, 3)), n(linspace(0.0, 1.0, 3)))
}
