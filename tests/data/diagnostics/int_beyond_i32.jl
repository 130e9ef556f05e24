# A compile-time integer that meets i32 tensors must fit i32 (it was
# clamped to 2147483647 silently).
fn count(x: i32) -> i32 = x + 1

fn main() {
    let big = 3000000000
    print(argmax(linspace(0.0, 1.0, 3), axis = 0) + big)
    print(count(big), count(-3000000000))
}
