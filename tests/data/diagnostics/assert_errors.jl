# assert: a compile-time check with the user's message, at the condition and the calls that led there.
use nn.multi_head_attention

fn blocks(x, n: int) {
    assert(size(x, 0) / n * n == size(x, 0), "blocks: the length must be a multiple of n")
    reshape(x, (-1, n))
}

# A failed assert in a one-expression function does not hide another function's error.
fn always() = assert(false, "always fails")

fn widen(x: f32[3]) = x + ones((4, 4))

fn main() {
    let x = reshape(linspace(-1.0, 1.0, 12), (1, 2, 6))
    print(blocks(linspace(0.0, 1.0, 6), 4))
    print(multi_head_attention(x, zeros((6, 18)), zeros(18), zeros((6, 6)), zeros(6), 4))
    assert(sum(x) > 0.0, "positive")
    assert(true, 3)
    always()
    print(widen(linspace(0.0, 1.0, 3)))
}
