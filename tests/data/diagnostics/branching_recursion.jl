# Recursion that branches: without a global stop this made 2^64 calls.
fn f(x = f()) {
    print(f())
}

fn main() {
    print(f())
}
