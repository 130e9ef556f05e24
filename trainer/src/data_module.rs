//! Data from Rust code, in place of a model file's `data` section:
//! Lightning's `DataModule` for programs that drive the trainer.
//!
//! Consumes whatever the implementation reads or generates; produces the
//! splits and the batching settings `setup::prepare` would otherwise take
//! from the `data` section. From there everything is as for a built-in
//! source: the columns are checked against (and converted to) the types
//! `training_step` declares, a validation split is cut with the run's
//! seed unless the module gives one, and batches are formed in the
//! trainer's seeded order, so runs and resumes are as reproducible as the
//! module's own data.

use crate::data::Dataset;

/// A source of training data written in Rust (see `fit_with_data`).
pub trait DataModule {
    /// Loads or makes the data (Lightning's `prepare_data` and `setup`):
    /// called once per run, before anything is compiled. An `Err` stops
    /// the run with the message, prefixed by `name`.
    fn setup(&mut self) -> Result<DataSplits, String>;

    /// Names the data in messages and in the run's saved config.
    fn name(&self) -> String {
        "data module".to_string()
    }
}

/// What `DataModule::setup` returns.
#[derive(Clone, Debug)]
pub struct DataSplits {
    pub train: Dataset,
    /// `None`: `val_split` examples are cut from `train` with the run's
    /// seed, as for the built-in sources.
    pub val: Option<Dataset>,
    /// For `test_after_fit` (`test_step`).
    pub test: Option<Dataset>,
    pub batch_size: usize,
    /// Examples held out of `train` for validation when `val` is `None`.
    pub val_split: usize,
    /// A new seeded order of `train` every epoch (else the given order).
    pub shuffle: bool,
}

impl DataSplits {
    /// `train` in batches of `batch_size`, shuffled each epoch, with no
    /// validation or test split.
    pub fn new(train: Dataset, batch_size: usize) -> DataSplits {
        DataSplits { train, val: None, test: None, batch_size, val_split: 0, shuffle: true }
    }
}
