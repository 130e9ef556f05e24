//! metrics.csv parsing, grouping, run-directory resolution, and the charts'
//! polylines read back from the SVG against the values they plot.

use super::*;

const CSV: &str = "epoch,step,train_loss_epoch,train_loss_step,val_acc,val_loss
0,49,,2.0,,
0,99,,1.0,,
0,99,1.5,,0.5,1.2
1,149,,0.5,,
1,199,,NaN,,
1,199,0.4,,0.8,0.9
";

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("jlc-plot-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn parses_sparse_rows_and_drops_non_finite_values() {
    let s = parse_metrics(Path::new("m.csv"), CSV).unwrap();
    let names: Vec<&str> = s.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["train_loss_epoch", "train_loss_step", "val_acc", "val_loss"]);
    assert_eq!(s[1].points, vec![(49.0, 2.0), (99.0, 1.0), (149.0, 0.5)], "NaN at step 199 is left out");
    assert_eq!(s[0].points, vec![(99.0, 1.5), (199.0, 0.4)]);
}

#[test]
fn malformed_files_name_the_line_and_the_problem() {
    let p = Path::new("run/metrics.csv");
    let e = parse_metrics(p, "epoch,step,loss\n0,1,0.5\n0,2\n").unwrap_err().to_string();
    assert_eq!(e, "run/metrics.csv: line 3: 2 cells, the header has 3");
    let e = parse_metrics(p, "epoch,step,loss\n0,1,abc\n").unwrap_err().to_string();
    assert_eq!(e, "run/metrics.csv: line 2: `abc` in column `loss` is not a number");
    let e = parse_metrics(p, "epoch,loss\n").unwrap_err().to_string();
    assert!(e.contains("line 1: expected a `step` column"), "{e}");
    assert!(parse_metrics(p, "").unwrap_err().to_string().contains("the file is empty"));
}

#[test]
fn groups_put_train_and_val_curves_of_one_quantity_together() {
    for (m, g) in [
        ("train_loss_step", "loss"),
        ("train_loss_epoch", "loss"),
        ("val_loss", "loss"),
        ("val_acc", "acc"),
        ("grad_norm", "grad_norm"),
        ("test_acc", "acc"),
    ] {
        assert_eq!(group_of(m), g, "{m}");
    }
}

/// The `points` of every `<polyline` in an SVG, as (x, y) pixel pairs.
fn polylines(svg: &str) -> Vec<Vec<(f64, f64)>> {
    svg.split("<polyline")
        .skip(1)
        .filter_map(|p| {
            let pts = p.split("points=\"").nth(1)?.split('"').next()?;
            Some(
                pts.split_whitespace()
                    .map(|xy| {
                        let (x, y) = xy.split_once(',').unwrap();
                        (x.parse().unwrap(), y.parse().unwrap())
                    })
                    .collect(),
            )
        })
        .collect()
}

#[test]
fn writes_one_chart_per_group_whose_lines_follow_the_values() {
    let root = temp_dir("run");
    let run = root.join("version_3");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(run.join("metrics.csv"), CSV).unwrap();
    // An older version with a different file must not be picked.
    std::fs::create_dir_all(root.join("version_1")).unwrap();
    std::fs::write(root.join("version_1/metrics.csv"), "epoch,step,other\n0,1,1\n").unwrap();
    let files = plot_run(&root, None).unwrap();
    let names: Vec<String> = files.iter().map(|f| f.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(names, ["acc.svg", "loss.svg"]);
    assert!(files.iter().all(|f| f.starts_with(run.join("plots"))));
    let svg = std::fs::read_to_string(run.join("plots/loss.svg")).unwrap();
    for name in ["train_loss_epoch", "train_loss_step", "val_loss"] {
        assert!(svg.contains(name), "the legend names {name}");
    }
    // The data lines are the polylines with one vertex per finite value (the
    // legend's samples have 2), in series order: train_loss_epoch (2 points),
    // train_loss_step (3), val_loss (2).
    let lines: Vec<Vec<(f64, f64)>> =
        polylines(&svg).into_iter().filter(|l| l.len() != 2 || l[0].1 != l[1].1).collect();
    let step = lines.iter().find(|l| l.len() == 3).expect("the train_loss_step line");
    // Steps increase to the right; a larger value is drawn higher (smaller y).
    assert!(step[0].0 < step[1].0 && step[1].0 < step[2].0, "{step:?}");
    assert!(step[0].1 < step[1].1 && step[1].1 < step[2].1, "loss 2.0 > 1.0 > 0.5: {step:?}");
    // Equal x spacing for steps 49 -> 99 -> 149.
    let (d1, d2) = (step[1].0 - step[0].0, step[2].0 - step[1].0);
    assert!((d1 - d2).abs() <= 1.0, "{d1} vs {d2}");
    // The y pixels are affine in the values: (2.0 - 1.0) / (1.0 - 0.5) = 2.
    let ratio = (step[1].1 - step[0].1) / (step[2].1 - step[1].1);
    assert!((ratio - 2.0).abs() < 0.05, "{ratio}");
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn the_trainers_root_dir_plots_its_newest_run() {
    // `jlc plot <default_root_dir>`: one level above the logger root.
    let root = temp_dir("root-dir");
    for (logger, version, text) in
        [("lightning_logs", "version_0", "epoch,step,a\n0,1,1\n"), ("lightning_logs", "version_2", CSV)]
    {
        let dir = root.join(logger).join(version);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("metrics.csv"), text).unwrap();
    }
    let files = plot_run(&root, None).unwrap();
    assert!(files.iter().all(|f| f.starts_with(root.join("lightning_logs/version_2/plots"))), "{files:?}");
    // Another logger name written later wins.
    std::thread::sleep(std::time::Duration::from_millis(20));
    let later = root.join("other/version_0");
    std::fs::create_dir_all(&later).unwrap();
    std::fs::write(later.join("metrics.csv"), CSV).unwrap();
    let files = plot_run(&root, None).unwrap();
    assert!(files.iter().all(|f| f.starts_with(later.join("plots"))), "{files:?}");
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn a_directory_without_metrics_is_a_clear_error() {
    let root = temp_dir("empty");
    let e = plot_run(&root, None).unwrap_err().to_string();
    assert!(e.contains("no metrics.csv here, in a version_N directory below"), "{e}");
    let e = plot_run(&root.join("missing"), None).unwrap_err().to_string();
    assert!(e.contains("cannot read the directory"), "{e}");
    std::fs::remove_dir_all(&root).unwrap();
}
