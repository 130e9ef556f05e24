fn main() {
    let x = linspace(0.0, 1.0, 4)
    let m = one_hot([0, 1], 3)
    print(x[1.0], m[..., 0, ...], m[0, 1, 2], x[3:1], x[::0], 3[0])
}
