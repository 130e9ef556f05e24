# A random key is an i32[2] tensor made by random_key(seed) or split(key).
fn main() {
    print(uniform(linspace(0.0, 1.0, 2), (2, 3)))
}
