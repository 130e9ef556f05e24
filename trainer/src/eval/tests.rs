use super::*;

#[test]
fn results_table_has_lightnings_layout() {
    let t = results_table(Stage::Test, &[("test_acc".into(), 0.5), ("test_loss".into(), 1.25)]);
    let lines: Vec<&str> = t.lines().collect();
    assert_eq!(lines.len(), 6, "{t}");
    assert!(lines[0].chars().all(|c| c == '─') && lines[0] == lines[2] && lines[0] == lines[5], "{t}");
    let row = |i: usize| lines[i].split_whitespace().collect::<Vec<_>>();
    assert_eq!(row(1), ["Test", "metric", "DataLoader", "0"]);
    assert_eq!(row(3), ["test_acc", "0.5"]);
    assert_eq!(row(4), ["test_loss", "1.25"]);
}
