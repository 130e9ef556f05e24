use "import_self_cycle.jl"

fn f(x) = x
