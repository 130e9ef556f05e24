fn f(x: f32[3], y: f32[3]) -> f32[3] = x + y

fn too_many(x: f32[3]) -> f32[3] = f(x, x, x)

fn twice(x: f32[3]) -> f32[3] = f(x, x = x)

fn missing(x: f32[3]) -> f32[3] = f(x)

fn not_a_function(x: f32[3]) -> f32[3] {
    let k = 2.0
    k(x)
}

fn bad_default(x: f32[3], k: int = 2.5) -> f32[3] = x

fn uses_bad_default(x: f32[3]) -> f32[3] = bad_default(x)

fn scaled(x: f32[3], scale: float = 2.0, shift: float = 0.0) -> f32[3] = x * scale

fn keyword_type(x: f32[3]) -> f32[3] = scaled(x, shift = 1.0 > 0.0, scale = x)
