fn main() {
    let n = arange(4)
    print(floor(n))
    print(i32(1e10))
    print(zeros(i32(-2.5)))
    print(round(n, 2))
}

fn spread() {
    print(var(arange(4)))
    print(std(linspace(0.0, 1.0, 4), ddof = -1))
    print(var(linspace(0.0, 1.0, 4), axis = 1))
}

fn running() {
    print(cumsum(arange(4)))
    print(cummax(linspace(0.0, 1.0, 4), axis = 1))
    print(cumsum(linspace(0.0, 1.0, 4), reverse = 1))
}
