//! The CSV logger, in PyTorch Lightning's CSVLogger layout:
//! `<root>/<name>/version_N/metrics.csv` (a new N per run) and
//! `hparams.yaml` beside it with the resolved configuration.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

pub struct CsvLogger {
    pub dir: PathBuf,
    columns: Vec<String>,
    /// `None`: a disabled logger (`fast_dev_run`) that writes nothing.
    out: Option<BufWriter<File>>,
}

impl CsvLogger {
    /// Creates the next free `version_N` directory; `metric_names` fixes the columns.
    pub fn create(root: &Path, name: &str, metric_names: &[String], hparams: &str) -> std::io::Result<CsvLogger> {
        let base = root.join(name);
        std::fs::create_dir_all(&base)?;
        let mut version = 0;
        let dir = loop {
            let candidate = base.join(format!("version_{version}"));
            // create_dir fails if it exists, so two concurrent runs never share a version.
            match std::fs::create_dir(&candidate) {
                Ok(()) => break candidate,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => version += 1,
                Err(e) => return Err(e),
            }
        };
        std::fs::write(dir.join("hparams.yaml"), hparams)?;
        let mut columns = vec!["epoch".to_string(), "step".to_string()];
        let mut names = metric_names.to_vec();
        names.sort();
        names.dedup();
        columns.extend(names);
        let mut out = BufWriter::new(File::create(dir.join("metrics.csv"))?);
        writeln!(out, "{}", columns.join(","))?;
        Ok(CsvLogger { dir, columns, out: Some(out) })
    }

    /// A logger that writes nothing; `dir` is only reported.
    pub fn disabled(dir: PathBuf) -> CsvLogger {
        CsvLogger { dir, columns: vec![], out: None }
    }

    /// Writes one row; metrics not given are left empty.
    pub fn log(&mut self, epoch: usize, step: usize, metrics: &[(String, f64)]) -> std::io::Result<()> {
        let Some(out) = self.out.as_mut() else { return Ok(()) };
        let mut cells = vec![epoch.to_string(), step.to_string()];
        for col in &self.columns[2..] {
            cells.push(metrics.iter().find(|(k, _)| k == col).map(|(_, v)| format!("{v}")).unwrap_or_default());
        }
        writeln!(out, "{}", cells.join(","))
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        match self.out.as_mut() {
            Some(out) => out.flush(),
            None => Ok(()),
        }
    }
}
