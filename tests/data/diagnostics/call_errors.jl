fn f(x: f32[3], y: f32[3]) -> f32[3] = x + y

fn too_many(x: f32[3]) -> f32[3] = f(x, x, x)

fn twice(x: f32[3]) -> f32[3] = f(x, x = x)

fn missing(x: f32[3]) -> f32[3] = f(x)

fn not_a_function(x: f32[3]) -> f32[3] {
    let k = 2.0
    k(x)
}
