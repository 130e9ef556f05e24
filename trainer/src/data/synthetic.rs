//! Synthetic datasets selectable from a model file (`data =
//! synthetic("moons", n = 1000, noise = 0.1)`), as scikit-learn's
//! `make_moons`, `make_blobs` and `make_regression` make them: for trying
//! a model or the trainer without a data file. Deterministic in their
//! `seed` (the data's, apart from the trainer's seed, so that changing the
//! trainer's seed changes the initialization and the shuffle, not the
//! data); the test split is a second draw from its own stream.

use super::{Column, Dataset, Values};
use crate::rng::Rng;

/// What to generate.
#[derive(Clone, Debug, PartialEq)]
pub struct SyntheticSpec {
    pub kind: SyntheticKind,
    /// Training examples (the validation split, if any, is taken from these).
    pub n: usize,
    /// Test examples (0: no test split).
    pub n_test: usize,
    /// Input features (moons: always 2).
    pub features: usize,
    /// blobs: the classes; regression: the outputs per example.
    pub classes: usize,
    /// The standard deviation of the Gaussian noise added.
    pub noise: f64,
    pub seed: u64,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SyntheticKind {
    /// Two interleaving half circles in 2-D, labels 0 and 1 (`i32`).
    Moons,
    /// Gaussian clusters around `classes` centres drawn uniformly in
    /// [-10, 10]^features, labels 0.. (`i32`), balanced.
    Blobs,
    /// `y = x @ w + b + noise`, x standard normal, w and b standard normal
    /// (drawn once per seed); `y` is `f32[classes]`.
    Regression,
}

impl SyntheticKind {
    pub fn parse(name: &str) -> Option<SyntheticKind> {
        match name {
            "moons" => Some(SyntheticKind::Moons),
            "blobs" => Some(SyntheticKind::Blobs),
            "regression" => Some(SyntheticKind::Regression),
            _ => None,
        }
    }
}

/// The training and (when `n_test > 0`) test splits.
pub fn generate(spec: &SyntheticSpec) -> (Dataset, Option<Dataset>) {
    // The task (blob centres, regression weights) is shared by both splits;
    // the examples are drawn from one stream per split.
    let task = Task::new(spec, &mut Rng::derive(spec.seed, "synthetic task"));
    let train = draw(spec, &task, spec.n, &mut Rng::derive(spec.seed, "synthetic train"));
    let test = (spec.n_test > 0).then(|| draw(spec, &task, spec.n_test, &mut Rng::derive(spec.seed, "synthetic test")));
    (train, test)
}

/// The parameters of the task that every split shares.
pub struct Task {
    /// Blobs: `classes` rows of `features`.
    pub centres: Vec<Vec<f64>>,
    /// Regression: `w[feature][output]` and `b[output]`.
    pub w: Vec<Vec<f64>>,
    pub b: Vec<f64>,
}

impl Task {
    pub fn new(spec: &SyntheticSpec, rng: &mut Rng) -> Task {
        let (mut centres, mut w, mut b) = (Vec::new(), Vec::new(), Vec::new());
        match spec.kind {
            SyntheticKind::Moons => {}
            SyntheticKind::Blobs => {
                centres =
                    (0..spec.classes).map(|_| (0..spec.features).map(|_| rng.uniform(-10.0, 10.0)).collect()).collect()
            }
            SyntheticKind::Regression => {
                w = (0..spec.features).map(|_| (0..spec.classes).map(|_| rng.normal()).collect()).collect();
                b = (0..spec.classes).map(|_| rng.normal()).collect();
            }
        }
        Task { centres, w, b }
    }
}

/// `n` examples, in random order (labels are not sorted).
fn draw(spec: &SyntheticSpec, task: &Task, n: usize, rng: &mut Rng) -> Dataset {
    let features = if spec.kind == SyntheticKind::Moons { 2 } else { spec.features };
    let mut x: Vec<f32> = Vec::with_capacity(n * features);
    let y = match spec.kind {
        SyntheticKind::Moons => {
            let mut labels = Vec::with_capacity(n);
            for i in 0..n {
                // Half the examples on each moon; t along the half circle.
                let (label, t) = ((i % 2) as i32, rng.uniform(0.0, std::f64::consts::PI));
                let (px, py) = if label == 0 { (t.cos(), t.sin()) } else { (1.0 - t.cos(), 0.5 - t.sin()) };
                x.push((px + spec.noise * rng.normal()) as f32);
                x.push((py + spec.noise * rng.normal()) as f32);
                labels.push(label);
            }
            Column::new(Values::I32(labels), vec![], 1.0)
        }
        SyntheticKind::Blobs => {
            let mut labels = Vec::with_capacity(n);
            for i in 0..n {
                let class = i % spec.classes;
                x.extend(task.centres[class].iter().map(|c| (c + spec.noise * rng.normal()) as f32));
                labels.push(class as i32);
            }
            Column::new(Values::I32(labels), vec![], 1.0)
        }
        SyntheticKind::Regression => {
            let mut targets = Vec::with_capacity(n * spec.classes);
            for _ in 0..n {
                let row: Vec<f64> = (0..features).map(|_| rng.normal()).collect();
                for o in 0..spec.classes {
                    let clean = task.b[o] + row.iter().zip(&task.w).map(|(xi, wi)| xi * wi[o]).sum::<f64>();
                    targets.push((clean + spec.noise * rng.normal()) as f32);
                }
                x.extend(row.iter().map(|&v| v as f32));
            }
            Column::new(Values::F32(targets), vec![spec.classes], 1.0)
        }
    };
    let data = Dataset { x: Column::new(Values::F32(x), vec![features], 1.0), y };
    // Labels alternate by construction: shuffle so that a split or a batch
    // taken in order is not biased.
    let order = rng.permutation(n);
    data.subset(&order)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: SyntheticKind, noise: f64) -> SyntheticSpec {
        SyntheticSpec { kind, n: 400, n_test: 100, features: 3, classes: 4, noise, seed: 7 }
    }

    fn f32s(c: &Column) -> &[f32] {
        let Values::F32(v) = &c.values else { panic!("f32 column") };
        v
    }

    fn i32s(c: &Column) -> &[i32] {
        let Values::I32(v) = &c.values else { panic!("i32 column") };
        v
    }

    #[test]
    fn moons_lie_on_their_half_circles_without_noise() {
        let (train, test) = generate(&spec(SyntheticKind::Moons, 0.0));
        let test = test.unwrap();
        assert_eq!((train.len(), test.len(), train.x.dims.clone()), (400, 100, vec![2]));
        let (x, y) = (f32s(&train.x), i32s(&train.y));
        assert_eq!(y.iter().filter(|&&l| l == 1).count(), 200, "balanced");
        for (p, &label) in x.chunks(2).zip(y) {
            let (px, py) = (p[0] as f64, p[1] as f64);
            // Moon 0: the upper unit half circle; moon 1: centred at (1, 0.5), lower half.
            let (cx, cy, upper) = if label == 0 { (0.0, 0.0, true) } else { (1.0, 0.5, false) };
            let r = ((px - cx).powi(2) + (py - cy).powi(2)).sqrt();
            assert!((r - 1.0).abs() < 1e-6 && ((py - cy) >= -1e-6) == upper, "{p:?} label {label}");
        }
    }

    #[test]
    fn blobs_cluster_around_shared_centres_and_splits_differ() {
        let s = spec(SyntheticKind::Blobs, 0.5);
        let (train, test) = generate(&s);
        let test = test.unwrap();
        let task = Task::new(&s, &mut Rng::derive(s.seed, "synthetic task"));
        for data in [&train, &test] {
            for (p, &label) in f32s(&data.x).chunks(3).zip(i32s(&data.y)) {
                let d2: f64 = p.iter().zip(&task.centres[label as usize]).map(|(a, c)| (*a as f64 - c).powi(2)).sum();
                assert!(d2.sqrt() < 0.5 * 6.0, "{p:?} far from centre {label}");
            }
        }
        assert_ne!(f32s(&train.x)[..12], f32s(&test.x)[..12]);
        // Deterministic in the seed; another seed, other data.
        assert_eq!(generate(&s).0, train);
        assert_ne!(generate(&SyntheticSpec { seed: 8, ..s }).0, train);
    }

    #[test]
    fn regression_targets_are_the_affine_map_without_noise() {
        let s = spec(SyntheticKind::Regression, 0.0);
        let (train, _) = generate(&s);
        assert_eq!((train.x.dims.clone(), train.y.dims.clone()), (vec![3], vec![4]));
        let task = Task::new(&s, &mut Rng::derive(s.seed, "synthetic task"));
        for (xr, yr) in f32s(&train.x).chunks(3).zip(f32s(&train.y).chunks(4)) {
            for (o, &yo) in yr.iter().enumerate() {
                let want = task.b[o] + xr.iter().zip(&task.w).map(|(xi, wi)| *xi as f64 * wi[o]).sum::<f64>();
                assert!((yo as f64 - want).abs() < 1e-4 * (1.0 + want.abs()), "{yo} vs {want}");
            }
        }
    }
}
