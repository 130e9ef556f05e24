use super::*;

#[test]
fn an_image_grid_tiles_pads_and_clamps() {
    // Three 2x2 grey images, two per row: 2 rows and 2 columns of (2 + 2) * 2 + 2 = 10 px.
    let vals = vec![0.0, 0.5, 1.0, 2.0, -1.0, 0.25, 0.75, 1.0, 1.0, 1.0, 1.0, 1.0];
    let t = Tensor::f32(&[3, 2, 2], vals);
    let (w, h, color, px) = image_grid(&t, 2).unwrap();
    let scale = 8; // 480 / 10, at most 8
    assert_eq!((w, h, color), (10 * scale as u32, 10 * scale as u32, png::ColorType::Grayscale));
    let at = |x: usize, y: usize| px[(y * scale) * w as usize + x * scale];
    // Padding is black; image 0 at (2, 2): 0, 0.5 / 1, 2 (clamped to 1).
    assert_eq!((at(0, 0), at(2, 2), at(3, 2), at(2, 3), at(3, 3)), (0, 0, 128, 255, 255));
    // Image 1 at (6, 2): -1 clamps to 0, 0.25 -> 64.
    assert_eq!((at(6, 2), at(7, 2)), (0, 64));
    // Image 2 starts the second row at (2, 6).
    assert_eq!(at(2, 6), 255);
    assert_eq!(at(6, 6), 0, "no fourth image");
}

#[test]
fn a_plot_renders_and_writes_a_png_that_decodes() {
    let x: Vec<f64> = (0..50).map(|i| i as f64 / 10.0).collect();
    let y: Vec<f64> = x.iter().map(|v| v.sin()).collect();
    let lo: Vec<f64> = y.iter().map(|v| v - 0.3).collect();
    let hi: Vec<f64> = y.iter().map(|v| v + 0.3).collect();
    let dir = std::env::temp_dir().join(format!("jlc-artifact-{}", std::process::id()));
    let spec = ArtifactSpec {
        path: "band.png".into(),
        kind: ArtifactKind::Plot { title: "sin(x) +- 0.3".into() },
        roles: vec!["x".into(), "y".into(), "lower".into(), "upper".into()],
    };
    let t = |v: &[f64]| Tensor::f32(&[v.len()], v.iter().map(|&a| a as f32).collect());
    let path = write(&spec, &[t(&x), t(&y), t(&lo), t(&hi)], &dir).unwrap();
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), (900, 600));
    // Not blank: the band's light blue and the line's blue are there.
    let blue = buf.chunks(3).filter(|p| p[2] > 200 && p[0] < 100).count();
    assert!(blue > 500, "{blue} blue pixels");
    assert!(!path.with_extension("png.tmp").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}
