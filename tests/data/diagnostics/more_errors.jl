use nn.{relu, sofmax}

model Net {
    body: Blok()
}

fn int_pow(n: i32[3]) -> i32[3] = n ^ n

fn array_of_tensors(x: f32[3]) -> f32[2] = [x[0], 1.0]

fn tensor_param_given_model(x: f32[3]) -> f32[3] = relu(Net)

fn vmap_to_model(x: f32[2, 3]) -> f32[2, 3] = vmap(fn(r) = Net)(x)

fn key_from_float(x: f32[3]) = random_key(1.5)

fn step_unknown(x: f32[N], k: int) -> f32[N] = x[::k]

fn long_loop(x: f32[3]) -> f32[3] {
    let acc = x
    for i in 0..20000 {
        acc = acc + 1.0
    }
    acc
}
