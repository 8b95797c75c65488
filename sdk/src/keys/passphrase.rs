//! Choosing a keyring backend and getting its passphrase, the same way in `nesa` and
//! `nesa-node`: `--keyring-backend file|test`, then the passphrase from
//! `--keyring-passphrase-file`, `NESA_KEYRING_PASSPHRASE`, or a prompt on the terminal.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use super::{KeyError, Keyring};

/// Environment variable holding the `file` keyring's passphrase (for services and scripts).
pub const PASSPHRASE_ENV: &str = "NESA_KEYRING_PASSPHRASE";

/// Where keys are kept.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum KeyringBackend {
    /// Mnemonics encrypted with a passphrase in `keyring-file.json`.
    #[default]
    File,
    /// Mnemonics in clear in `keyring.json` (mode 0600): devnets, tests and scripts only.
    Test,
}

/// Why a passphrase is asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PassphraseUse {
    /// To open an existing keyring.
    Unlock,
    /// To create a keyring (asked twice on a terminal).
    Create,
}

/// The keyring flags both binaries take.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct KeyringArgs {
    /// Keyring backend: `file` (mnemonics encrypted with a passphrase) or `test` (plain text,
    /// for devnets and scripts only)
    #[arg(
        long,
        global = true,
        env = "NESA_KEYRING_BACKEND",
        value_enum,
        default_value_t = KeyringBackend::File,
        value_name = "BACKEND"
    )]
    pub keyring_backend: KeyringBackend,
    /// File whose first line is the `file` keyring's passphrase (otherwise
    /// NESA_KEYRING_PASSPHRASE, otherwise a prompt on the terminal)
    #[arg(long, global = true, value_name = "FILE")]
    pub keyring_passphrase_file: Option<PathBuf>,
}

impl KeyringArgs {
    /// Opens the keyring in `home` with the chosen backend.
    pub fn open(&self, home: &Path) -> Result<Keyring, KeyError> {
        let file = self.keyring_passphrase_file.clone();
        Keyring::open_backend(home, self.keyring_backend, move |purpose| {
            read_passphrase(file.as_deref(), purpose)
        })
    }
}

/// The passphrase from `file`, else [`PASSPHRASE_ENV`], else a prompt (no echo) when a
/// person is at a terminal.
pub fn read_passphrase(file: Option<&Path>, purpose: PassphraseUse) -> Result<String, KeyError> {
    if let Some(file) = file {
        let text = std::fs::read_to_string(file).map_err(|source| KeyError::Io {
            action: "read the passphrase file",
            path: file.to_owned(),
            source,
        })?;
        return Ok(text.lines().next().unwrap_or_default().to_owned());
    }
    if let Ok(passphrase) = std::env::var(PASSPHRASE_ENV) {
        return Ok(passphrase);
    }
    if !std::io::stdin().is_terminal() {
        return Err(KeyError::NoPassphrase);
    }
    let prompt = |text: &str| {
        rpassword::prompt_password(text).map_err(|source| KeyError::Io {
            action: "read the passphrase from",
            path: PathBuf::from("the terminal"),
            source,
        })
    };
    match purpose {
        PassphraseUse::Unlock => prompt("Enter keyring passphrase: "),
        PassphraseUse::Create => {
            let first = prompt("Enter a passphrase to encrypt your keyring: ")?;
            if prompt("Re-enter the passphrase: ")? != first {
                return Err(KeyError::PassphraseMismatch);
            }
            Ok(first)
        }
    }
}
