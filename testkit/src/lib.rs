//! Prerequisites of tests that need something from outside the repository — a CometBFT
//! binary, the default model — which `scripts/setup` installs.
//!
//! A missing prerequisite never lets a test pass silently:
//! - with `CI=true` (as CI runs) the test fails, naming what is missing and how to get it;
//! - otherwise the test returns early, prints `SKIPPED <test>: <reason>` and appends the same
//!   line to the file named by `NESA_SKIPPED_LOG`, which `scripts/test` lists at the end.
//!
//! ```ignore
//! #[test]
//! fn four_validators_agree() {
//!     let Some(cometbft) = nesa_testkit::require_tool("four_validators_agree", "cometbft",
//!         "scripts/setup installs it where Go is present") else { return };
//!     // …
//! }
//! ```

use std::fmt::Display;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The environment variable naming the file skipped tests are appended to.
pub const SKIPPED_LOG_VAR: &str = "NESA_SKIPPED_LOG";

/// What to do about a missing prerequisite.
#[derive(Debug, PartialEq, Eq)]
pub enum Missing {
    /// Under CI: the test must fail with this message.
    Fail(String),
    /// Elsewhere: the test is skipped; this line is printed and logged.
    Skip(String),
}

/// Decides what a missing prerequisite means for `test`, given whether this is a CI run.
pub fn decide(test: &str, reason: &str, ci: bool) -> Missing {
    if ci {
        Missing::Fail(format!(
            "{test}: prerequisite missing under CI=true: {reason}"
        ))
    } else {
        Missing::Skip(format!("SKIPPED {test}: {reason}"))
    }
}

/// Whether this process runs under CI (`CI=true`, as CI services set it).
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| value.eq_ignore_ascii_case("true") || value == "1")
}

/// Reports a missing prerequisite of `test`: panics under CI, else prints and logs a skip.
pub fn missing(test: &str, reason: impl Display) {
    match decide(test, &reason.to_string(), under_ci()) {
        Missing::Fail(message) => panic!("{message}"),
        Missing::Skip(line) => {
            eprintln!("{line}");
            if let Some(log) = std::env::var_os(SKIPPED_LOG_VAR) {
                let appended = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&log)
                    // One write of the whole line: appends from parallel tests never interleave.
                    .and_then(|mut file| file.write_all(format!("{line}\n").as_bytes()));
                if let Err(e) = appended {
                    eprintln!(
                        "cannot record the skip in {}: {e}",
                        PathBuf::from(log).display()
                    );
                }
            }
        }
    }
}

/// The file at `path` if it exists; otherwise reports it missing for `test` (with `hint`
/// telling how to get it) and returns `None`.
pub fn require_file(test: &str, path: &Path, hint: &str) -> Option<PathBuf> {
    if path.is_file() {
        return Some(path.to_path_buf());
    }
    missing(test, format!("{} not found ({hint})", path.display()));
    None
}

/// Where the project's scripts install tools (`NESA_TOOLS`, default `~/.cache/nesa/bin`).
pub fn tools_dir() -> PathBuf {
    std::env::var_os("NESA_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| home().join(".cache/nesa/bin"))
}

/// The executable `name` from the tools directory, `PATH` or `~/go/bin`; otherwise reports
/// it missing for `test` (with `hint`) and returns `None`.
pub fn require_tool(test: &str, name: &str, hint: &str) -> Option<PathBuf> {
    if let Some(found) = find_tool(name) {
        return Some(found);
    }
    missing(
        test,
        format!(
            "`{name}` not found in {}, PATH or ~/go/bin ({hint})",
            tools_dir().display()
        ),
    );
    None
}

/// The executable `name` from the tools directory, `PATH` or `~/go/bin`, if any.
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let mut dirs = vec![tools_dir()];
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    dirs.push(home().join("go/bin"));
    dirs.into_iter()
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default()
}

/// A directory under the system temp dir, unique to this process and call, removed (with
/// what it holds) when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A new (not yet created) directory named after `label`.
    pub fn new(label: &str) -> Self {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let serial = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        TempDir(std::env::temp_dir().join(format!(
            "nesa-test-{label}-{}-{serial}-{nanos:08x}",
            std::process::id()
        )))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `command` as a user without a keyring setting runs it: no keyring backend or passphrase
/// inherited from the caller's environment, no terminal to prompt on, and `passphrase` (if
/// any) given through `NESA_KEYRING_PASSPHRASE`.
pub fn without_keyring_settings<'c>(
    command: &'c mut std::process::Command,
    passphrase: Option<&str>,
) -> &'c mut std::process::Command {
    command
        .env_remove("NESA_KEYRING_BACKEND")
        .env_remove("NESA_KEYRING_PASSPHRASE")
        .stdin(std::process::Stdio::null());
    if let Some(passphrase) = passphrase {
        command.env("NESA_KEYRING_PASSPHRASE", passphrase);
    }
    command
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_prerequisite_fails_under_ci() {
        assert_eq!(
            decide("four_validators_agree", "cometbft not found", true),
            Missing::Fail(
                "four_validators_agree: prerequisite missing under CI=true: cometbft not found"
                    .into()
            )
        );
    }

    #[test]
    fn a_missing_prerequisite_is_a_named_skip_elsewhere() {
        assert_eq!(
            decide("greedy_answer", "model not found", false),
            Missing::Skip("SKIPPED greedy_answer: model not found".into())
        );
    }

    #[test]
    fn an_existing_file_is_returned() {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
        assert_eq!(
            require_file(
                "an_existing_file_is_returned",
                &manifest,
                "it is in the repository"
            ),
            Some(manifest)
        );
    }

    #[test]
    fn an_absent_tool_is_not_found() {
        assert_eq!(find_tool("no-such-tool-anywhere-3f9a"), None);
    }
}
