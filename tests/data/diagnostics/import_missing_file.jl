use "layers_that_do_not_exist.jl".{Block}

fn main() {
    print(1.0)
}
