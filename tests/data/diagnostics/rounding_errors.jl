fn main() {
    let n = arange(4)
    print(floor(n))
    print(i32(1e10))
    print(zeros(i32(-2.5)))
    print(round(n, 2))
}
