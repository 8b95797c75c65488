//! `nesa-node generate` end to end on the tiny test model.

use std::process::Command;

use nesa_engine::tiny::{tiny_model_file, TinyModelSpec};

fn generate(args: &[&str]) -> std::process::Output {
    let model = tiny_model_file(&TinyModelSpec::default()).unwrap();
    Command::new(env!("CARGO_BIN_EXE_nesa-node"))
        .arg("generate")
        .arg("--model")
        .arg(&model)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn generate_prints_tokens_and_speed_as_json() {
    let output = generate(&["--prompt", "hello there", "--max-tokens", "5", "--json"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(stdout.contains("\"tokens\":["), "{stdout}");
    assert!(stdout.contains("\"decode_tps\":"), "{stdout}");
    let again = String::from_utf8(
        generate(&["--prompt", "hello there", "--max-tokens", "5", "--json"]).stdout,
    )
    .unwrap();
    let tokens = |s: &str| {
        s.split("\"tokens\":")
            .nth(1)
            .unwrap()
            .split(']')
            .next()
            .unwrap()
            .to_string()
    };
    assert_eq!(
        tokens(&stdout),
        tokens(&again),
        "greedy by default, so the same tokens"
    );
}

#[test]
fn generate_runs_a_layer_range_as_a_shard() {
    let output = generate(&["--prompt", "hello", "--layers", "1..3"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8(output.stdout)
        .unwrap()
        .contains("layers 1..3:"));
}

#[test]
fn generate_explains_bad_input() {
    let empty = generate(&["--prompt", "  "]);
    assert!(!empty.status.success());
    assert!(String::from_utf8_lossy(&empty.stderr).contains("prompt is empty"));
    let range = generate(&["--prompt", "hi", "--layers", "3..9"]);
    assert!(!range.status.success());
    assert!(String::from_utf8_lossy(&range.stderr).contains("layer range 3..9"));
}
