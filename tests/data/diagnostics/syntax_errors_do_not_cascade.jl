# Each syntax error is reported once, and nothing that depends on what the
# parser dropped is reported again: names a broken statement binds, a
# broken `use`, a model field and a method with broken declarations. The
# independent mistake at the end (`undefined_name`) is still reported.
use nn.{Linear, relu

model Net(hidden: int = 8) {
    l1: Linear(4, hidden)
    scale: f32[hidden = ones()

    fn forward(self, x: f32[B, 4) -> f32[B, hidden] {
        relu(self.l1(x)) * self.scale
    }

    fn loss(self, x: f32[B, 4]) -> f32 = mean(self.forward(x))
}

fn fit(x: f32[4]) -> f32 {
    let w, b) = (2.0, 1.0)
    let y = x * w + b
    w = w - 0.1
    sum(y) + w
}

fn other(x: f32[4]) -> f32 = sum(x) + undefined_name
