# A syntax error in a signature is reported once: the rest of that item's
# body is not reported token by token. The next item's own error still is.
model M(d: int = 4) {
    fn forward(self, tokens: i32[B, d]) -> f32[(B * d), 4] {
        let x = tokens
        for i in 0..2 {
            x = x
        }
        x
    }
}

fn g(x) = x +
fn h(x) = x
