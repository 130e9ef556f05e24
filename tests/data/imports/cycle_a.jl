use "lib/cycle_b.jl".{b}

fn a() = b()
