use optim.sgd

fn helper(x: f32[4]) -> f32 {
    log("x_sum", sum(x))
    sum(x)
}

# A helper called from a step may not log either, typed or not: log
# belongs to the step methods themselves.
fn report(v) {
    log("v", v)
}

model Net {
    w: f32[4] = zeros()

    fn training_step(self, x: f32[B, 4], y: f32[B]) -> f32 {
        let loss = mean((x @ self.w - y) ^ 2)
        report(loss)
        loss
    }

    fn configure_optimizers(self) {
        sgd(0.1)
    }
}
