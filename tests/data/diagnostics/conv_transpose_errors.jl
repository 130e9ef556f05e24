# conv_transpose2d: the kernel is [in, out / groups, KH, KW] (PyTorch's layout).
fn channels(x: f32[B, 3, 8, 8], w: f32[4, 2, 3, 3]) = conv_transpose2d(x, w, stride = 2)

# output_padding must be below the stride (or the dilation).
fn too_much_padding(x: f32[B, 4, 8, 8], w: f32[4, 2, 3, 3]) = conv_transpose2d(x, w, stride = 2, output_padding = 2)

# The padding cuts away the whole output: (1 - 1) * 1 - 2 * 2 + 2 + 0 + 1 < 1.
fn nothing_left(x: f32[B, 4, 1, 1], w: f32[4, 2, 3, 3]) = conv_transpose2d(x, w, padding = 2)

# The symbolic size of the result: (H - 1) * 2 + 2, so this annotation is wrong.
fn upsample(x: f32[B, 4, H, W], w: f32[4, 2, 2, 2]) -> f32[B, 2, H, W] = conv_transpose2d(x, w, stride = 2)

# A stride-2, 2x2 transposed conv doubles H and W: this annotation is right.
fn doubled(x: f32[B, 4, H, W], w: f32[4, 2, 2, 2]) -> f32[B, 2, H * 2, W * 2] = conv_transpose2d(x, w, stride = 2)

# No output channels, and absurd options: errors, not crashes.
fn empty(x: f32[B, 4, 8, 8], w: f32[4, 0, 3, 3]) = conv_transpose2d(x, w)
fn huge(x: f32[B, 4, 8, 8], w: f32[4, 2, 3, 3]) = conv_transpose2d(x, w, stride = 4611686018427387904)
fn huge_conv(x: f32[B, 4, 8, 8], w: f32[2, 4, 3, 3]) = conv2d(x, w, padding = 4611686018427387904)
fn no_channels(x: f32[B, 4, 8, 8], w: f32[0, 4, 3, 3]) = conv2d(x, w)
