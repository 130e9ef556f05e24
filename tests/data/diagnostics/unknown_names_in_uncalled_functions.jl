# Bodies are read for unknown names even when nothing calls them: these
# parameters are untyped, so nothing elaborates the functions yet.
fn helper(x) = x + undefined_thing

fn other(x) {
    let z = x
    sqrtt(z)
}

model Net(width: int = 4) {
    fn forward(self, x) = x * widht
}
