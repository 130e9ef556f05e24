# take(table, idx) needs i32 indices; the error shows both types.
fn embed(table: f32[10, 4], idx: f32[B]) = take(table, idx)
