//! `jlc plot RUN_DIR`: the logged curves of a run as SVG charts.
//!
//! Consumes a run's `metrics.csv` (the CSV logger's Lightning layout:
//! `epoch,step,<metric>...`, empty cells where a row does not log a metric);
//! produces one SVG per metric group in `<RUN_DIR>/plots/`, x = step. A
//! group is a metric's name without its split prefix (`train_`, `val_`,
//! `test_`) and Lightning's `_step`/`_epoch` suffix, so `train_loss_step`,
//! `train_loss_epoch` and `val_loss` share the `loss` chart, as one looks at
//! them. SVG via plotters' SVG backend, its text measured with the font
//! embedded in the binary (`artifact::register_font`): no system fonts or
//! libraries needed, so `jlc` stays one static binary (without the font,
//! plotters fails with `FontUnavailable` on a machine without fonts). Non-finite values are left out (a NaN
//! loss ends the curve; the message of the run already named it).

use plotters::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("{path}: {message}")]
    Input { path: PathBuf, message: String },
    #[error("{path}: cannot write the chart: {message}")]
    Output { path: PathBuf, message: String },
}

/// One logged metric: its column name and its (step, value) points in file order.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// The metrics of a `metrics.csv` text: one series per metric column with
/// at least one value. `path` only names the file in errors.
pub fn parse_metrics(path: &Path, text: &str) -> Result<Vec<Series>, PlotError> {
    let err = |line: usize, message: String| PlotError::Input {
        path: path.to_path_buf(),
        message: format!("line {line}: {message}"),
    };
    let mut lines = text.lines().enumerate();
    let Some((_, header)) = lines.next() else {
        return Err(err(1, "the file is empty; expected the header `epoch,step,...`".into()));
    };
    let columns: Vec<&str> = header.split(',').map(str::trim).collect();
    let Some(step_col) = columns.iter().position(|c| *c == "step") else {
        return Err(err(1, format!("expected a `step` column in the header, found `{header}`")));
    };
    let mut series: Vec<Series> = columns.iter().map(|c| Series { name: c.to_string(), points: Vec::new() }).collect();
    for (i, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        if cells.len() != columns.len() {
            return Err(err(i + 1, format!("{} cells, the header has {}", cells.len(), columns.len())));
        }
        let step: f64 = cells[step_col]
            .parse()
            .map_err(|_| err(i + 1, format!("the step `{}` is not a number", cells[step_col])))?;
        for (k, cell) in cells.iter().enumerate() {
            if k == step_col || columns[k] == "epoch" || cell.is_empty() {
                continue;
            }
            let v: f64 = cell
                .parse()
                .map_err(|_| err(i + 1, format!("`{}` in column `{}` is not a number", cell, columns[k])))?;
            if v.is_finite() {
                series[k].points.push((step, v));
            }
        }
    }
    Ok(series.into_iter().filter(|s| !s.points.is_empty()).collect())
}

/// The chart a metric belongs to (see the module doc).
pub fn group_of(metric: &str) -> &str {
    let m = ["train_", "val_", "test_"].iter().find_map(|p| metric.strip_prefix(p)).unwrap_or(metric);
    ["_step", "_epoch"].iter().find_map(|s| m.strip_suffix(s)).unwrap_or(m)
}

/// The run directory to plot: `dir` itself when it holds `metrics.csv`
/// (or is one), else its newest `version_N` whose `metrics.csv` has a row
/// (a logger root such as `lightning_logs`: a killed run or a resumed
/// one with nothing left to train leaves only the header), else the newest
/// such run of a logger root below it (the trainer's `default_root_dir`;
/// with several logger names, the run whose `metrics.csv` was written last).
pub fn resolve_run_dir(dir: &Path) -> Result<PathBuf, PlotError> {
    if dir.join("metrics.csv").is_file() {
        return Ok(dir.to_path_buf());
    }
    if dir.is_file() && dir.file_name().is_some_and(|n| n == "metrics.csv") {
        return Ok(dir.parent().unwrap_or(Path::new(".")).to_path_buf());
    }
    let subdirs = |d: &Path| -> Result<Vec<PathBuf>, PlotError> {
        let read = std::fs::read_dir(d).map_err(|e| PlotError::Input {
            path: d.to_path_buf(),
            message: format!("cannot read the directory: {e}"),
        })?;
        Ok(read.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_dir()).collect())
    };
    let children = subdirs(dir)?;
    if let Some(run) = newest_version(&children) {
        return Ok(run);
    }
    let written = |p: &PathBuf| std::fs::metadata(p.join("metrics.csv")).and_then(|m| m.modified()).ok();
    let runs = children.iter().filter_map(|c| subdirs(c).ok().and_then(|gc| newest_version(&gc)));
    runs.max_by_key(written).ok_or_else(|| PlotError::Input {
        path: dir.to_path_buf(),
        message: "no metrics.csv here, in a version_N directory below, or in <name>/version_N below \
                  (was the run logged with logger = \"csv\"?)"
            .into(),
    })
}

/// The `version_N` among `dirs` with the largest N whose `metrics.csv`
/// holds a row.
fn newest_version(dirs: &[PathBuf]) -> Option<PathBuf> {
    dirs.iter()
        .filter_map(|p| {
            let n: usize = p.file_name()?.to_str()?.strip_prefix("version_")?.parse().ok()?;
            has_rows(&p.join("metrics.csv")).then_some((n, p.clone()))
        })
        .max_by_key(|(n, _)| *n)
        .map(|(_, p)| p)
}

/// Whether the CSV file at `path` has a line after its header.
fn has_rows(path: &Path) -> bool {
    use std::io::BufRead;
    let Ok(file) = std::fs::File::open(path) else { return false };
    std::io::BufReader::new(file).lines().nth(1).is_some_and(|l| l.is_ok_and(|l| !l.trim().is_empty()))
}

/// Plots `run_dir`'s metrics (see `resolve_run_dir`) into `out_dir`
/// (default `<run>/plots`), one `<group>.svg` per group; returns the files
/// written, sorted.
pub fn plot_run(run_dir: &Path, out_dir: Option<&Path>) -> Result<Vec<PathBuf>, PlotError> {
    let run = resolve_run_dir(run_dir)?;
    let csv = run.join("metrics.csv");
    let text = std::fs::read_to_string(&csv)
        .map_err(|e| PlotError::Input { path: csv.clone(), message: format!("cannot read: {e}") })?;
    let series = parse_metrics(&csv, &text)?;
    if series.is_empty() {
        return Err(PlotError::Input { path: csv, message: "no metric has a finite value yet".into() });
    }
    let out = out_dir.map_or_else(|| run.join("plots"), Path::to_path_buf);
    std::fs::create_dir_all(&out).map_err(|e| PlotError::Output { path: out.clone(), message: e.to_string() })?;
    crate::artifact::register_font().map_err(|message| PlotError::Output { path: out.clone(), message })?;
    let mut groups: BTreeMap<&str, Vec<&Series>> = BTreeMap::new();
    for s in &series {
        groups.entry(group_of(&s.name)).or_default().push(s);
    }
    let mut written = Vec::new();
    for (group, members) in groups {
        let path = out.join(format!("{}.svg", file_name(group)));
        draw_chart(&path, group, &members).map_err(|message| PlotError::Output { path: path.clone(), message })?;
        written.push(path);
    }
    Ok(written)
}

/// A metric name as a file name: anything but letters, digits, `_` and `-` becomes `_`.
fn file_name(group: &str) -> String {
    group.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' }).collect()
}

/// Colours that stay apart on white, in series order.
const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

fn draw_chart(path: &Path, title: &str, series: &[&Series]) -> Result<(), String> {
    let all = series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY);
    for &(x, y) in all {
        (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
    }
    // A flat or single-point range still needs a width.
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    let pad = if y1 > y0 { 0.05 * (y1 - y0) } else { 0.5 * y0.abs().max(1.0) };
    let (y0, y1) = (y0 - pad, y1 + pad);
    let root = SVGBackend::new(path, (800, 480)).into_drawing_area();
    let e = |e: &dyn std::fmt::Display| e.to_string();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(|x| e(&x))?;
    chart.configure_mesh().x_desc("step").draw().map_err(|x| e(&x))?;
    for (i, s) in series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        // Per-epoch metrics have few points: mark them.
        let sparse = s.points.len() <= 50;
        chart
            .draw_series(LineSeries::new(s.points.iter().copied(), color.stroke_width(2)))
            .map_err(|x| e(&x))?
            .label(s.name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
        if sparse {
            chart.draw_series(s.points.iter().map(|&p| Circle::new(p, 3, color.filled()))).map_err(|x| e(&x))?;
        }
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.85)).border_style(BLACK).draw().map_err(|x| e(&x))?;
    root.present().map_err(|x| e(&x))?;
    Ok(())
}

#[cfg(test)]
mod tests;
