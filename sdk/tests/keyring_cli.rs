//! `nesa keys` with the two keyring backends, as a user runs it: `file` by default (encrypted,
//! passphrase from the environment or a file), `test` when asked (plain, for scripts).

use std::path::Path;
use std::process::{Command, Output};

use nesa_testkit::{without_keyring_settings, TempDir};

const PASSPHRASE: &str = "a long enough passphrase";

/// Runs `nesa` with `args` in `home`, no terminal, the backend and passphrase only as given.
fn nesa(home: &Path, args: &[&str], passphrase: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_nesa"));
    command.args(args).arg("--home").arg(home);
    without_keyring_settings(&mut command, passphrase)
        .output()
        .unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn the_default_file_backend_encrypts_and_names_a_wrong_or_missing_passphrase() {
    let home = TempDir::new("file");
    let added = nesa(&home.0, &["keys", "add", "alice"], Some(PASSPHRASE));
    assert!(added.status.success(), "{}", stderr(&added));
    let stored = std::fs::read_to_string(home.0.join("keyring-file.json")).unwrap();
    let mnemonic_line = String::from_utf8_lossy(&added.stdout)
        .lines()
        .find(|line| line.split(' ').count() == 24)
        .expect("the new mnemonic is shown once")
        .to_owned();
    assert!(!stored.contains(&mnemonic_line), "mnemonic stored in clear");
    assert!(!home.0.join("keyring.json").exists());

    let shown = nesa(&home.0, &["keys", "show", "alice"], Some(PASSPHRASE));
    assert!(shown.status.success(), "{}", stderr(&shown));
    let wrong = nesa(
        &home.0,
        &["keys", "show", "alice"],
        Some("not the passphrase"),
    );
    assert!(!wrong.status.success());
    assert!(
        stderr(&wrong).contains("wrong passphrase"),
        "{}",
        stderr(&wrong)
    );
    let missing = nesa(&home.0, &["keys", "show", "alice"], None);
    assert!(!missing.status.success());
    assert!(
        stderr(&missing).contains("NESA_KEYRING_PASSPHRASE"),
        "{}",
        stderr(&missing)
    );

    let file = home.0.join("passphrase.txt");
    std::fs::write(&file, format!("{PASSPHRASE}\n")).unwrap();
    let from_file = nesa(
        &home.0,
        &[
            "keys",
            "show",
            "alice",
            "--keyring-passphrase-file",
            file.to_str().unwrap(),
        ],
        None,
    );
    assert!(from_file.status.success(), "{}", stderr(&from_file));
    assert_eq!(from_file.stdout, shown.stdout);
}

#[test]
fn the_test_backend_keeps_plain_keyrings_and_migrate_encrypts_them() {
    let home = TempDir::new("test");
    let added = nesa(
        &home.0,
        &["keys", "add", "bob", "--keyring-backend", "test"],
        None,
    );
    assert!(added.status.success(), "{}", stderr(&added));
    assert!(home.0.join("keyring.json").exists());
    let listed = nesa(
        &home.0,
        &["keys", "list", "--keyring-backend", "test"],
        None,
    );
    assert!(String::from_utf8_lossy(&listed.stdout).contains("bob"));
    let refused = nesa(&home.0, &["keys", "list"], Some(PASSPHRASE));
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("--keyring-backend test"),
        "{}",
        stderr(&refused)
    );

    let migrated = nesa(&home.0, &["keys", "migrate"], Some(PASSPHRASE));
    assert!(migrated.status.success(), "{}", stderr(&migrated));
    assert!(!home.0.join("keyring.json").exists());
    let listed = nesa(&home.0, &["keys", "list"], Some(PASSPHRASE));
    assert!(listed.status.success(), "{}", stderr(&listed));
    assert!(String::from_utf8_lossy(&listed.stdout).contains("bob"));
}
