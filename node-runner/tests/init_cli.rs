//! `nesa-node init`: the runner's key lands in an encrypted keyring by default, every file it
//! writes is owner-only, and `--keyring-backend test` keeps a plain keyring for devnets.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const PASSPHRASE: &str = "runner passphrase";

fn home(label: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "nesa-node-init-{label}-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ))
}

fn init(home: &Path, extra: &[&str], passphrase: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_nesa-node"));
    command.arg("init").arg("--home").arg(home).args(extra);
    nesa_testkit::without_keyring_settings(&mut command, passphrase)
        .output()
        .unwrap()
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn init_keeps_the_runner_key_encrypted_and_owner_only_by_default() {
    let home = home("file");
    let created = init(&home, &[], Some(PASSPHRASE));
    let stderr = String::from_utf8_lossy(&created.stderr).into_owned();
    assert!(created.status.success(), "{stderr}");
    let address = String::from_utf8(created.stdout).unwrap();
    assert!(address.trim().starts_with("nesa1"), "{address}");
    let mnemonic = stderr
        .lines()
        .find(|line| line.split(' ').count() == 24)
        .expect("the new mnemonic is shown once");
    let keyring = home.join("keyring-file.json");
    assert!(!std::fs::read_to_string(&keyring)
        .unwrap()
        .contains(mnemonic));
    assert!(!home.join("keyring.json").exists());
    #[cfg(unix)]
    {
        assert_eq!(mode(&keyring), 0o600);
        assert_eq!(mode(&home.join("config.toml")), 0o600);
    }
    let again = init(&home, &[], Some(PASSPHRASE));
    assert_eq!(String::from_utf8(again.stdout).unwrap(), address);
    let wrong = init(&home, &[], Some("another passphrase"));
    assert!(!wrong.status.success());
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("wrong passphrase"));
    std::fs::remove_dir_all(&home).unwrap();
}

#[test]
fn init_with_the_test_backend_needs_no_passphrase() {
    let home = home("test");
    let created = init(&home, &["--keyring-backend", "test"], None);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    assert!(home.join("keyring.json").exists());
    assert!(!home.join("keyring-file.json").exists());
    std::fs::remove_dir_all(&home).unwrap();
}
