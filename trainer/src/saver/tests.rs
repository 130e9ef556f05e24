//! The writer thread: saves land in order and whole, a failed write stops
//! every later one and reaches the loop, ranked-out files go after the new.

use super::*;
use compiler::ir::DType;

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("jlc-saver-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn names() -> Vec<(String, Type)> {
    vec![("w".to_string(), Type::new(DType::F32, &[]))]
}

fn at(global_step: usize) -> Position {
    Position { epoch: 0, batch: global_step, global_step, loss_sum: 0.0, log_sums: vec![] }
}

fn saved_step(path: &std::path::Path) -> (usize, f64) {
    let c = checkpoint::load(path).unwrap();
    (c.meta.global_step, c.tensors[0].1.scalar_value())
}

#[test]
fn saves_land_in_order_and_whole_once_written() {
    let dir = temp_dir("order");
    std::fs::create_dir_all(&dir).unwrap();
    let names = names();
    let saver = Saver::new(dir.clone(), &names, crate::checkpoint::tests::meta());
    let mut last = None;
    for step in 1..=5 {
        let file = format!("step={step}.safetensors");
        // Step 5 ranks out step 1's file, which goes only after step 5's is written.
        let remove = if step == 5 { vec![dir.join("step=1.safetensors")] } else { vec![] };
        let w = [Tensor::scalar_f32(step as f32)];
        last = saver.save(&[file], true, &remove, &at(step), &w, &[], &[]).unwrap();
    }
    assert_eq!(last, Some(dir.join("last.safetensors")));
    saver.finish().unwrap();
    assert_eq!(saver.last_good(), last);
    assert_eq!(saved_step(&dir.join("last.safetensors")), (5, 5.0));
    for step in 2..=5 {
        assert_eq!(saved_step(&dir.join(format!("step={step}.safetensors"))), (step, step as f32 as f64));
    }
    assert!(!dir.join("step=1.safetensors").exists());
    assert_eq!(checkpoint::remove_stray_temps(&dir).unwrap(), 0);
}

#[test]
fn a_failed_write_stops_later_writes_and_stays_the_error() {
    // The checkpoint directory is missing: the first write fails.
    let dir = temp_dir("fail");
    let names = names();
    let saver = Saver::new(dir.clone(), &names, crate::checkpoint::tests::meta());
    let w = [Tensor::scalar_f32(1.0)];
    saver.save(&["a.safetensors".into()], true, &[], &at(1), &w, &[], &[]).unwrap();
    // Once the queue is drained, the failure is the error, naming the file.
    let err = saver.finish().unwrap_err().to_string();
    assert!(err.starts_with(&format!("checkpoint {}: cannot write ", dir.join("a.safetensors").display())), "{err}");
    // And stays the error: no later save is written, even where it now could be.
    std::fs::create_dir_all(&dir).unwrap();
    let again = saver.save(&["b.safetensors".into()], true, &[], &at(2), &w, &[], &[]).unwrap_err();
    assert_eq!(again.to_string(), err);
    assert_eq!(saver.finish().unwrap_err().to_string(), err);
    assert!(!dir.join("b.safetensors").exists() && !dir.join("last.safetensors").exists());
    assert_eq!(saver.last_good(), None, "nothing was written whole");
}

#[test]
fn last_good_names_the_newest_whole_file_when_a_later_write_failed() {
    let dir = temp_dir("last-good");
    std::fs::create_dir_all(&dir).unwrap();
    let names = names();
    let saver = Saver::new(dir.clone(), &names, crate::checkpoint::tests::meta());
    let w = [Tensor::scalar_f32(1.0)];
    saver.save(&["a.safetensors".into()], false, &[], &at(1), &w, &[], &[]).unwrap();
    // A name inside a missing directory: this save's write fails.
    saver.save(&["missing/b.safetensors".into()], false, &[], &at(2), &w, &[], &[]).unwrap();
    // A run stopping on another error names the newest whole file (the
    // failed write is printed beside it, not returned).
    assert_eq!(saver.last_good(), Some(dir.join("a.safetensors")));
    assert!(saver.finish().is_err());
}

#[test]
fn a_failure_found_at_save_time_is_that_saves_error() {
    let dir = temp_dir("at-save");
    let names = names();
    let saver = Saver::new(dir.clone(), &names, crate::checkpoint::tests::meta());
    let w = [Tensor::scalar_f32(1.0)];
    saver.save(&[], true, &[], &at(1), &w, &[], &[]).unwrap();
    // Wait for the writer without taking its error (a flush answered means the write before it ended).
    let (done, wait) = mpsc::channel();
    saver.writer.send(Job::Flush(done)).unwrap();
    wait.recv().unwrap();
    let err = saver.save(&[], true, &[], &at(2), &w, &[], &[]).unwrap_err();
    assert!(matches!(err, FitError::Checkpoint(_)), "{err}");
    assert!(err.to_string().contains("last.safetensors"), "{err}");
}
