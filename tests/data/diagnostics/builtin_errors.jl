use nn.{relu, softplus}

model M(width: int = 3) {
    fn size(self) = self.width
}

fn int_exp(n: i32[3]) -> f32[3] = exp(n)

fn bool_neg(b: bool[3]) -> bool[3] = -b

fn bool_sum(b: bool[3]) -> bool[3] = b + b

fn int_and_float(n: i32[3]) -> i32[3] = n * 0.5

fn where_dtypes(x: f32[3], n: i32[3]) -> f32[3] = where(x > 0.0, x, n)

fn where_shapes(x: f32[3], y: f32[4]) -> f32[3] = where(x > 0.0, x, y)

fn flat(x: f32[3]) -> f32[3] = flatten(x, start = 1)

fn vmapped(x: f32[2, 3]) -> f32[2, 3] = vmap(fn(r) = r * 2.0)(x = x)

fn one_name_two_sizes(x: f32[3, 4]) -> f32[K, K] = x

fn main() {
    print(M())
}
