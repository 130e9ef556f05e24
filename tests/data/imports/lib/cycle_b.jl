use "../cycle_a.jl"

fn b() = 1.0
