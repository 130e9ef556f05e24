# Lists of submodules are bounded: nested lists multiply, and a length of
# 10^12 would otherwise loop for hours before running out of memory.
model Lin(n: int) {
    w: f32[n, n] = glorot_uniform()

    fn __call__(self, x) = x @ self.w
}

model Stack {
    layers: [Lin(4); 100]
}

model Deep {
    stacks: [Stack(); 200]
    huge: [Lin(4); 468469117444]
}

fn main() {
    let d = Deep()
    print(1.0)
}
