//! The run's loggers, in PyTorch Lightning's layout: `<root>/<name>/version_N/`
//! (a new N per run) holding `hparams.yaml` (the resolved configuration),
//! `metrics.csv` (CSVLogger) and, when asked, a TensorBoard event file
//! (TensorBoardLogger, `tensorboard.rs`). Every row goes to each logger.

use crate::config::Loggers;
use crate::tensorboard::EventWriter;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

pub struct Logger {
    pub dir: PathBuf,
    columns: Vec<String>,
    /// `None`: no CSV (`logger` without `csv`, or `fast_dev_run`).
    csv: Option<BufWriter<File>>,
    tensorboard: Option<EventWriter>,
}

impl Logger {
    /// Creates the next free `version_N` directory; `metric_names` fixes the CSV columns.
    pub fn create(
        root: &Path,
        name: &str,
        metric_names: &[String],
        hparams: &str,
        loggers: Loggers,
    ) -> std::io::Result<Logger> {
        let base = root.join(name);
        // Each error names the path it concerns (`cannot write logs: /proc/x/lightning_logs: ...`).
        let at = |path: &Path| {
            let path = path.display().to_string();
            move |e: std::io::Error| std::io::Error::new(e.kind(), format!("{path}: {e}"))
        };
        if let Some(file) = base.ancestors().find(|p| p.exists() && !p.is_dir()) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!("{} is a file, where the run directory {} needs a directory", file.display(), base.display()),
            ));
        }
        std::fs::create_dir_all(&base).map_err(at(&base))?;
        let mut version = 0;
        let dir = loop {
            let candidate = base.join(format!("version_{version}"));
            // create_dir fails if it exists, so two concurrent runs never share a version.
            match std::fs::create_dir(&candidate) {
                Ok(()) => break candidate,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => version += 1,
                Err(e) => return Err(at(&candidate)(e)),
            }
        };
        std::fs::write(dir.join("hparams.yaml"), hparams).map_err(at(&dir.join("hparams.yaml")))?;
        let mut columns = vec!["epoch".to_string(), "step".to_string()];
        let mut names = metric_names.to_vec();
        names.sort();
        names.dedup();
        columns.extend(names);
        let csv = if loggers.csv {
            let mut out = BufWriter::new(File::create(dir.join("metrics.csv")).map_err(at(&dir.join("metrics.csv")))?);
            writeln!(out, "{}", columns.join(","))?;
            Some(out)
        } else {
            None
        };
        let tensorboard = if loggers.tensorboard { Some(EventWriter::create(&dir)?) } else { None };
        Ok(Logger { dir, columns, csv, tensorboard })
    }

    /// A logger that writes nothing; `dir` is only reported.
    pub fn disabled(dir: PathBuf) -> Logger {
        Logger { dir, columns: vec![], csv: None, tensorboard: None }
    }

    /// Writes one row; metrics not given are left empty in the CSV. In
    /// TensorBoard the row is one event at `step` with every metric and,
    /// as Lightning adds it, `epoch`.
    pub fn log(&mut self, epoch: usize, step: usize, metrics: &[(String, f64)]) -> std::io::Result<()> {
        if let Some(out) = self.csv.as_mut() {
            let mut cells = vec![epoch.to_string(), step.to_string()];
            for col in &self.columns[2..] {
                cells.push(metrics.iter().find(|(k, _)| k == col).map(|(_, v)| format!("{v}")).unwrap_or_default());
            }
            writeln!(out, "{}", cells.join(","))?;
        }
        if let Some(tb) = self.tensorboard.as_mut() {
            let mut values = metrics.to_vec();
            values.push(("epoch".to_string(), epoch as f64));
            tb.scalars(step as i64, &values)?;
        }
        Ok(())
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        if let Some(out) = self.csv.as_mut() {
            out.flush()?;
        }
        if let Some(tb) = self.tensorboard.as_mut() {
            tb.flush()?;
        }
        Ok(())
    }

    /// The TensorBoard event file, when there is one.
    pub fn event_file(&self) -> Option<&Path> {
        self.tensorboard.as_ref().map(|t| t.path.as_path())
    }
}
