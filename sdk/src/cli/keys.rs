//! `nesa keys …`: the local keyring.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::Context;
use clap::Subcommand;
use nesa_sdk::KeyEntry;
use serde::Serialize;

use super::{output::emit, GlobalArgs};

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Create a key from a new 24-word mnemonic, or recover one with --recover.
    ///
    /// With the default `file` backend the mnemonic is stored encrypted with your passphrase
    /// in <home>/keyring-file.json (mode 0600); `--keyring-backend test` stores it in clear in
    /// <home>/keyring.json, for devnets and scripts only. Keep the mnemonic somewhere safe.
    Add {
        /// Name to refer to the key by
        name: String,
        /// Read an existing BIP-39 mnemonic from stdin (one line) instead of generating one
        #[arg(long)]
        recover: bool,
    },
    /// Print the address of a key
    Show {
        /// Key name
        name: String,
        /// Print the compressed secp256k1 public key (hex) instead of the address
        #[arg(long)]
        pubkey: bool,
    },
    /// List all keys
    List,
    /// Equivariant-encryption (ee-v1) keys of encrypted kernels: `nesa ask` finds them by the
    /// kernel's weights hash
    #[command(subcommand)]
    Ee(EeCommand),
    /// Move the keys of a plain-text (`test` backend) keyring.json into the encrypted `file`
    /// keyring (asks for a new passphrase), then delete keyring.json
    Migrate,
    /// Delete a key (its mnemonic is gone for good unless you wrote it down)
    Delete {
        /// Key name
        name: String,
        /// Do not ask for confirmation
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

#[derive(Subcommand)]
pub enum EeCommand {
    /// Import a key file written by `nesa-node kernel encrypt` (stored in <home>/ee/, mode 0600)
    Import {
        /// The key file
        file: std::path::PathBuf,
    },
    /// Write the key of a kernel to a file (mode 0600), e.g. to move it to another wallet
    Export {
        /// The kernel's weights sha256 (hex), as `nesa query market kernel <id>` shows it
        kernel_sha256: String,
        /// Where to write the key
        #[arg(long)]
        out: std::path::PathBuf,
    },
    /// List the kernels (weights sha256) this wallet holds keys for
    List,
}

fn run_ee(command: EeCommand, global: &GlobalArgs) -> anyhow::Result<()> {
    let store = nesa_sdk::ee::Keystore::open(&global.home_dir()?);
    match command {
        EeCommand::Import { file } => {
            let kernel = store.import(&file)?;
            println!("imported the ee-v1 key of kernel weights {kernel}");
        }
        EeCommand::Export { kernel_sha256, out } => {
            store.export(&kernel_sha256, &out)?;
            println!("wrote {}", out.display());
        }
        EeCommand::List => {
            for kernel in store.list()? {
                println!("{kernel}");
            }
        }
    }
    Ok(())
}

/// What is shown about a key; never the mnemonic, except once at creation.
#[derive(Serialize)]
struct PublicKeyView<'a> {
    name: &'a str,
    address: String,
    pubkey: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    mnemonic: Option<&'a str>,
}

impl<'a> PublicKeyView<'a> {
    fn of(entry: &'a KeyEntry) -> Self {
        Self {
            name: &entry.name,
            address: entry.address.to_string(),
            pubkey: &entry.pubkey,
            mnemonic: None,
        }
    }
}

pub fn run(command: KeysCommand, global: &GlobalArgs) -> anyhow::Result<()> {
    if let KeysCommand::Ee(ee) = command {
        return run_ee(ee, global);
    }
    if let KeysCommand::Migrate = command {
        let file = global.keyring.keyring_passphrase_file.clone();
        let keyring = nesa_sdk::Keyring::migrate_to_file(&global.home_dir()?, move |purpose| {
            nesa_sdk::keys::read_passphrase(file.as_deref(), purpose)
        })?;
        println!(
            "moved {} key(s) into {} (encrypted); the plain keyring.json is deleted",
            keyring.list().len(),
            keyring.path().display()
        );
        return Ok(());
    }
    let mut keyring = global.open_keyring()?;
    match command {
        KeysCommand::Ee(_) | KeysCommand::Migrate => unreachable!("handled above"),
        KeysCommand::Add {
            name,
            recover: false,
        } => {
            let entry = keyring.add(&name)?;
            let view = PublicKeyView {
                mnemonic: Some(&entry.mnemonic),
                ..PublicKeyView::of(&entry)
            };
            emit(global.output, &view, |view| {
                format!(
                    "{}\n\n**Important** write this mnemonic phrase down and keep it safe.\n\
                     It is the only way to recover this key; it will not be shown again.\n\n{}\n",
                    describe(view),
                    entry.mnemonic
                )
            })
        }
        KeysCommand::Add {
            name,
            recover: true,
        } => {
            let mnemonic = read_mnemonic_line()?;
            let entry = keyring.recover(&name, &mnemonic)?;
            emit(global.output, &PublicKeyView::of(&entry), describe)
        }
        KeysCommand::Show { name, pubkey } => {
            let entry = keyring.show(&name)?;
            emit(global.output, &PublicKeyView::of(entry), |view| {
                if pubkey {
                    view.pubkey.to_owned()
                } else {
                    view.address.clone()
                }
            })
        }
        KeysCommand::List => {
            if keyring.list().is_empty() && global.output == super::OutputFormat::Text {
                eprintln!(
                    "no keys in {}: create one with `nesa keys add <name>`",
                    keyring.path().display()
                );
                return Ok(());
            }
            let views: Vec<PublicKeyView> = keyring.list().iter().map(PublicKeyView::of).collect();
            emit(global.output, &views, |views| {
                let width = views.iter().map(|v| v.name.len()).max().unwrap_or(0);
                views
                    .iter()
                    .map(|v| format!("{:width$}  {}\n", v.name, v.address))
                    .collect()
            })
        }
        KeysCommand::Delete { name, yes } => {
            let address = keyring.show(&name)?.address;
            if !yes && !confirm(&format!("Delete key '{name}' ({address})? Its mnemonic cannot be recovered from here. [y/N] "))? {
                anyhow::bail!("key '{name}' was not deleted: answer y to confirm, or pass --yes");
            }
            let entry = keyring.delete(&name)?;
            emit(global.output, &PublicKeyView::of(&entry), |view| {
                format!("deleted key '{}' ({})", view.name, view.address)
            })
        }
    }
}

fn describe(view: &PublicKeyView) -> String {
    format!(
        "name: {}\naddress: {}\npubkey: {}",
        view.name, view.address, view.pubkey
    )
}

/// Reads one line from stdin, prompting only when a person is typing.
fn read_mnemonic_line() -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("Enter your BIP-39 mnemonic: ");
        std::io::stderr().flush()?;
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .context("cannot read the mnemonic from stdin")?;
    if line.trim().is_empty() {
        anyhow::bail!("no mnemonic on stdin: pipe or type the 12 or 24 words on one line");
    }
    Ok(line)
}

/// Asks a yes/no question on stderr and reads the answer from stdin; no answer means no.
fn confirm(question: &str) -> anyhow::Result<bool> {
    eprint!("{question}");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim().to_lowercase().as_str(), "y" | "yes"))
}
