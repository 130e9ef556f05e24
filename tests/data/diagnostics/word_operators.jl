# Python's word operators: the language spells them `&&`, `||` and `!`.
fn both(a: f32[3], b: f32[3]) = where(a > 0.0 and b > 0.0, a, b)

fn neither(a: bool) = if not a { 1.0 } else { 0.0 }
