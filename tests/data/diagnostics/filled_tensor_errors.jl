# zeros/ones take one shape (or none: an initializer); full takes a shape
# and a number (or one number: an initializer); a shape is integers.
fn main() {
    print(zeros((2, 3), 1), full((2, 2)), zeros("a"))
}
