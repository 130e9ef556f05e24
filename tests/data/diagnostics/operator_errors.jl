fn mixed(x: f32[3], n: i32[3]) -> f32[3] = x + n

fn where_float(x: f32[3]) -> f32[3] = where(x, x, x)

fn labels(y: f32[4]) -> f32[4, 3] = one_hot(y, 3)

fn matmul_ints(a: i32[2, 2]) -> i32[2, 2] = a @ a

fn not_bools(x: f32[3]) -> f32[3] = x && x

fn print_here(x: f32[3]) -> f32[3] {
    print(x)
    x
}
