use nn.{Linear, BatchNorm1d}
use optim.sgd

model Counter {
    l: Linear(2, 1)
    seen: f32[1] = buffer(zeros())
    total: f32[2] = buffer()

    fn training_step(self, x: f32[B, 2], y: i32[B]) -> f32 {
        assign(self, seen = self.seen + 1.0)
        assign(self, seen = self.seen + 2.0)
        assign(self, total = sum(x, axis = 0, keepdims = true))
        assign(self, weight = self.seen)
        assign(self, sen = self.seen)
        assign(self.l, bias = self.seen)
        assign(x, seen = self.seen)
        mean(self.l(x))
    }

    fn validation_step(self, x: f32[B, 2], y: i32[B]) {
        assign(self, seen = self.seen)
        log("n", sum(self.seen))
    }

    fn configure_optimizers(self) = sgd(lr = 0.1)
}

fn misplaced() = buffer(zeros(), 2)

model Inside {
    bn: BatchNorm1d(2)
    c: f32[2] = buffer(zeros())
    n: i32[1] = buffer(zeros())

    fn bump(self, z: f32[2]) -> f32 {
        if self.training {
            assign(self, c = self.c + 1.0)
        }
        sum(z * z)
    }

    fn training_step(self, x: f32[B, 2], y: i32[B]) -> f32 {
        let g = grad(fn(z) = self.bump(z))(x[0])
        let h = vmap(fn(r) = self.bn(reshape(r, (1, 2))))(x)
        sum(g) + sum(h)
    }
}
