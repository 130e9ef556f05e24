# A default argument that calls its own function recurses forever.
fn f(x = f()) = x

fn main() {
    print(f())
}
