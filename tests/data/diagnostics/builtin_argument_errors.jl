# Builtins that take tensors: a string, a missing argument, bools where
# numbers are needed, and tuples where one tensor is expected.
fn main() {
    let x = linspace(-1.0, 1.0, 4)
    print(exp("x"), sum(), abs(x > 0.0), sign(x))
    print(take((x, x), [0, 1]), take_along_axis(x, 1))
    print(x + (x, x), "a" + 1)
}
