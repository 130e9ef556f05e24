# A model that contains itself.
model M {
    inner: M()
}

fn main() {
    let m = M()
}
