fn main() {
    let x = linspace(0.0, 1.0, 6)
    print(x[::-1], x[5:1:-2], x[1:5:-1], x[6::-1], x[3:-1:-1], x[::0])
}
