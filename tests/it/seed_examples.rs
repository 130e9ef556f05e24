//! The seed project's two experiments, shortened: the Bayesian NN on 1-D
//! regression (`vmap` over Monte-Carlo samples, a predictive plot) and the
//! score-based diffusion model on Fashion-MNIST (an MLP-Mixer, an ODE
//! sampler in a `scan` with `jvp`, a grid of samples), both drawing their
//! pictures in `on_train_end`.

use crate::checkpoints::{fit, root, FASHION};
use crate::examples::tempdir;
use std::path::Path;

/// A PNG's (width, height, colour type, pixels).
fn decode(path: &Path) -> (u32, u32, png::ColorType, Vec<u8>) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    (info.width, info.height, info.color_type, buf)
}

#[test]
fn bnn_regression_learns_and_its_band_covers_the_data() {
    let path = root().join("examples/bnn_regression.jl");
    let text = std::fs::read_to_string(&path).unwrap();
    let logs = tempdir("bnn");
    // 300 of the example's 4,000 steps (measured: nll_epoch -0.58, coverage 0.995).
    let s = fit(&path, &text, &logs, &["trainer.max_steps=300".into()], None);
    assert_eq!(s.steps, 300);
    let nll = s.final_metrics.iter().find(|(k, _)| k == "nll_epoch").unwrap().1;
    // A constant prediction with the best noise level scores about 0.92 on standardized data.
    assert!(nll < 0.0, "nll_epoch = {nll}");
    let coverage = s.on_train_end.iter().find(|(k, _)| k == "coverage_2sd").expect("logged by on_train_end").1;
    assert!((0.85..=1.0).contains(&coverage), "coverage_2sd = {coverage}");
    assert_eq!(s.artifacts, vec![s.log_dir.join("predictive.png")]);
    let (w, h, color, px) = decode(&s.artifacts[0]);
    assert_eq!((w, h, color), (900, 600, png::ColorType::Rgb));
    // The band (light blue), the sampled networks (red) and the data (dark) are drawn.
    let count = |f: &dyn Fn(&[u8]) -> bool| px.chunks(3).filter(|p| f(p)).count();
    assert!(count(&|p| p[2] > 200 && p[0] > 150 && p[0] < 230) > 10_000, "band");
    assert!(count(&|p| p[0] < 90 && p[1] < 90 && p[2] < 90) > 300, "data points");
}

#[test]
fn score_diffusion_trains_and_samples_a_grid() {
    if !Path::new(FASHION).is_dir() {
        eprintln!("skipped: {FASHION} is absent (apt-get install dataset-fashion-mnist)");
        return;
    }
    let path = root().join("examples/score_diffusion.jl");
    // Shortened: 10 training steps and 5 sampler steps instead of 100.
    let text = std::fs::read_to_string(&path).unwrap().replace("sample_steps: int = 100", "sample_steps: int = 5");
    assert!(text.contains("sample_steps: int = 5"), "the example's sampler setting moved");
    let logs = tempdir("diffusion");
    let s = fit(&path, &text, &logs, &["trainer.max_steps=10".into()], None);
    assert_eq!(s.steps, 10);
    assert_eq!(s.artifacts, vec![s.log_dir.join("samples.png")]);
    // 64 images of 28x28 in 8 rows of 8 with 2 px padding: 242 px, enlarged 2x.
    let (w, h, color, px) = decode(&s.artifacts[0]);
    assert_eq!((w, h, color), (484, 484, png::ColorType::Grayscale));
    // The padding is black and the samples are not.
    assert_eq!(px[0], 0);
    assert!(px.iter().filter(|&&v| v > 0).count() > 484 * 484 / 4);
}

#[test]
fn char_transformer_trains_on_the_shipped_text_and_samples() {
    let path = root().join("examples/char_transformer.jl");
    // Shortened: 4 steps, 40 sampled bytes.
    let text = std::fs::read_to_string(&path).unwrap().replace("sample_len: int = 400", "sample_len: int = 40");
    assert!(text.contains("sample_len: int = 40)"), "the example's sampler setting moved");
    let logs = tempdir("char-transformer");
    let s = fit(&path, &text, &logs, &["trainer.max_steps=4".into(), "trainer.limit_val_batches=1".into()], None);
    assert_eq!(s.steps, 4);
    assert_eq!(s.artifacts, vec![s.log_dir.join("sample.txt")]);
    let sample = std::fs::read(&s.artifacts[0]).unwrap();
    assert_eq!(sample.len(), 128 + 40, "the 128-byte prompt, then the sampled bytes");
    // The prompt is a window of the corpus.
    let mut corpus = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(
            std::fs::File::open(root().join("examples/data/tinyshakespeare.txt.gz")).unwrap(),
        ),
        &mut corpus,
    )
    .unwrap();
    assert_eq!(corpus.len(), 1_115_394);
    assert!(corpus.windows(128).any(|w| w == &sample[..128]), "the prompt comes from the text");
}
