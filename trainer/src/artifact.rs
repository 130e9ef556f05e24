//! Renders the pictures a model's `on_train_end` saves (`save_image`,
//! `save_plot`) to PNG files in the run directory.
//!
//! Consumes an `ArtifactSpec` and the hook program's output tensors for it;
//! produces one PNG. Image grids are tiled like torchvision's `make_grid`
//! (black padding, values clamped to [0, 1]) and enlarged by a whole factor
//! so small images stay visible; plots are drawn with plotters' bitmap
//! backend, with text from a font embedded in the binary (a subset of
//! DejaVu Sans, `trainer/assets`), so no system library is needed. The file
//! is written to a temporary name and renamed: never a partial PNG.

use compiler::ir::Tensor;
use compiler::lower::artifacts::ArtifactKind;
use compiler::lower::ArtifactSpec;
use plotters::prelude::*;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The embedded font (ASCII and a few symbols of DejaVu Sans; its licence
/// is `assets/DejaVuSans.LICENSE`).
const FONT: &[u8] = include_bytes!("../assets/DejaVuSans-subset.ttf");

/// Writes `spec`'s picture from `tensors` (its outputs, in role order)
/// into `dir`; returns the file's path.
pub fn write(spec: &ArtifactSpec, tensors: &[Tensor], dir: &Path) -> Result<PathBuf, String> {
    let path = dir.join(&spec.path);
    if spec.kind == ArtifactKind::Text {
        let bytes = text_bytes(&tensors[0]);
        write_atomically(&path, |f| Ok(f.write_all(&bytes)?))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        return Ok(path);
    }
    let (width, height, color, pixels) = match &spec.kind {
        ArtifactKind::Text => unreachable!("written above"),
        ArtifactKind::ImageGrid { nrow } => image_grid(&tensors[0], *nrow)?,
        ArtifactKind::Plot { title } => {
            let get = |role: &str| spec.roles.iter().position(|r| r == role).map(|i| tensors[i].to_f64_vec());
            if let (Some(sx), Some(sy)) = (get("scatter_x"), get("scatter_y")) {
                if sx.len() != sy.len() {
                    return Err(format!(
                        "{}: save_plot's scatter_x has {} values and scatter_y {}",
                        spec.path,
                        sx.len(),
                        sy.len()
                    ));
                }
            }
            let s = PlotData {
                x: get("x").expect("x"),
                y: get("y").expect("y"),
                band: get("lower").zip(get("upper")),
                samples: get("samples"),
                scatter: get("scatter_x").zip(get("scatter_y")),
                title: title.clone(),
            };
            let (w, h, px) = plot(&s)?;
            (w, h, png::ColorType::Rgb, px)
        }
    };
    write_atomically(&path, |file| {
        let mut enc = png::Encoder::new(file, width, height);
        enc.set_color(color);
        enc.set_depth(png::BitDepth::Eight);
        enc.write_header()?.write_image_data(&pixels)?;
        Ok(())
    })
    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(path)
}

/// `save_text`'s values as bytes (clamped to 0..255).
pub fn text_bytes(t: &Tensor) -> Vec<u8> {
    t.to_f64_vec().iter().map(|v| v.clamp(0.0, 255.0) as u8).collect()
}

/// Writes `path` through a temporary file renamed into place, so a file
/// of that name is always whole.
fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> Result<(), Box<dyn std::error::Error>>,
) -> Result<(), Box<dyn std::error::Error>> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut file = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
    write(&mut file)?;
    file.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Images `[N, H, W]`, `[N, C, H, W]` (C = 1 or 3) or `[H, W]` tiled
/// `nrow` to a row with 2 pixels of black between them: (width, height,
/// colour type, 8-bit pixels).
pub fn image_grid(t: &Tensor, nrow: usize) -> Result<(u32, u32, png::ColorType, Vec<u8>), String> {
    let dims = t.shape.dims();
    let (n, c, h, w) = match *dims {
        [h, w] => (1, 1, h, w),
        [n, h, w] => (n, 1, h, w),
        [n, c, h, w] => (n, c, h, w),
        _ => unreachable!("checked by the compiler"),
    };
    let values = t.to_f64_vec();
    if n == 0 || h == 0 || w == 0 {
        return Err("no images to save".into());
    }
    let pad = 2;
    let cols = nrow.min(n);
    let rows = n.div_ceil(cols);
    let (gw, gh) = (cols * (w + pad) + pad, rows * (h + pad) + pad);
    // A whole enlargement factor: small images (28x28) become visible.
    let scale = 480usize.div_ceil(gw.max(gh)).clamp(1, 8);
    let (sw, sh) = (gw * scale, gh * scale);
    let mut px = vec![0u8; sw * sh * c];
    for i in 0..n {
        let (r0, c0) = (pad + (i / cols) * (h + pad), pad + (i % cols) * (w + pad));
        for y in 0..h {
            for x in 0..w {
                for ch in 0..c {
                    let v = values[((i * c + ch) * h + y) * w + x];
                    // NaN draws black, like the padding.
                    let b = if v.is_nan() { 0 } else { (v.clamp(0.0, 1.0) * 255.0).round() as u8 };
                    for dy in 0..scale {
                        let row = (r0 + y) * scale + dy;
                        for dx in 0..scale {
                            px[(row * sw + (c0 + x) * scale + dx) * c + ch] = b;
                        }
                    }
                }
            }
        }
    }
    let color = if c == 1 { png::ColorType::Grayscale } else { png::ColorType::Rgb };
    Ok((sw as u32, sh as u32, color, px))
}

/// What `save_plot` draws.
pub struct PlotData {
    pub x: Vec<f64>,
    pub y: Vec<f64>,
    pub band: Option<(Vec<f64>, Vec<f64>)>,
    /// K curves over x, row-major `[K, N]`.
    pub samples: Option<Vec<f64>>,
    pub scatter: Option<(Vec<f64>, Vec<f64>)>,
    pub title: String,
}

/// Registers the embedded font as plotters' "sans-serif" (once per
/// process): every chart's text is measured with it, the SVG ones too.
pub(crate) fn register_font() -> Result<(), String> {
    static ONCE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ok = *ONCE.get_or_init(|| plotters::style::register_font("sans-serif", FontStyle::Normal, FONT).is_ok());
    if ok {
        Ok(())
    } else {
        Err("the embedded font did not load".into())
    }
}

/// Renders a plot to 8-bit RGB: (width, height, pixels).
pub fn plot(d: &PlotData) -> Result<(u32, u32, Vec<u8>), String> {
    register_font()?;
    let (w, h) = (900u32, 600u32);
    let mut buf = vec![0u8; (w * h * 3) as usize];
    let finite = |v: &&f64| v.is_finite();
    let mut xs: Vec<f64> = d.x.iter().filter(finite).copied().collect();
    let mut ys: Vec<f64> = d.y.iter().filter(finite).copied().collect();
    if let Some((lo, hi)) = &d.band {
        ys.extend(lo.iter().chain(hi).filter(finite));
    }
    if let Some(s) = &d.samples {
        ys.extend(s.iter().filter(finite));
    }
    if let Some((sx, sy)) = &d.scatter {
        xs.extend(sx.iter().filter(finite));
        ys.extend(sy.iter().filter(finite));
    }
    let range = |v: &[f64]| -> (f64, f64) {
        let (lo, hi) = v.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)));
        if !lo.is_finite() {
            return (0.0, 1.0);
        }
        let m = ((hi - lo) * 0.05).max(1e-9);
        (lo - m, hi + m)
    };
    let ((x0, x1), (y0, y1)) = (range(&xs), range(&ys));
    {
        let err = |e: &dyn std::fmt::Display| format!("cannot draw the plot: {e}");
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(&d.title, ("sans-serif", 24))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(|e| err(&e))?;
        chart.configure_mesh().light_line_style(WHITE.mix(0.0)).draw().map_err(|e| err(&e))?;
        let n = d.x.len();
        let pts = |ys: &[f64]| -> Vec<(f64, f64)> {
            d.x.iter().zip(ys).filter(|(a, b)| a.is_finite() && b.is_finite()).map(|(a, b)| (*a, *b)).collect()
        };
        if let Some((lo, hi)) = &d.band {
            let mut poly = pts(lo);
            poly.extend(pts(hi).into_iter().rev());
            chart.draw_series(std::iter::once(Polygon::new(poly, BLUE.mix(0.2)))).map_err(|e| err(&e))?;
        }
        if let Some(s) = &d.samples {
            let k = s.len() / n.max(1);
            let alpha = (3.0 / k.max(1) as f64).clamp(0.03, 0.6);
            for row in s.chunks(n.max(1)) {
                chart.draw_series(LineSeries::new(pts(row), RED.mix(alpha))).map_err(|e| err(&e))?;
            }
        }
        if let Some((sx, sy)) = &d.scatter {
            let points = sx.iter().zip(sy).filter(|(a, b)| a.is_finite() && b.is_finite());
            chart
                .draw_series(points.map(|(a, b)| Circle::new((*a, *b), 2, BLACK.mix(0.7).filled())))
                .map_err(|e| err(&e))?;
        }
        chart.draw_series(LineSeries::new(pts(&d.y), BLUE.stroke_width(2))).map_err(|e| err(&e))?;
        root.present().map_err(|e| err(&e))?;
    }
    Ok((w, h, buf))
}

#[cfg(test)]
mod tests;
