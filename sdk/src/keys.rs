//! The keyring: named secp256k1 keys derived from BIP-39 mnemonics, with two backends as in
//! Cosmos SDK chains:
//! - `file` (the CLIs' default): `<home>/keyring-file.json`, each mnemonic encrypted with a
//!   key derived from a passphrase ([`sealed`]);
//! - `test`: `<home>/keyring.json`, mnemonics in clear, for devnets, tests and scripts.
//!
//! Both files are written with mode 0600 from their first byte.

use std::{
    fmt, fs,
    path::{Path, PathBuf},
};

use bip39::{Language, Mnemonic};
use cosmrs::{bip32::DerivationPath, crypto::secp256k1::SigningKey};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::{address::Address, AddressExt, HD_PATH};

mod passphrase;
pub mod sealed;

pub use passphrase::{read_passphrase, KeyringArgs, KeyringBackend, PassphraseUse, PASSPHRASE_ENV};
use sealed::{SealError, SealedKeyringFile, Sealer, MIN_PASSPHRASE_LEN};

/// File name of the `test` (plain) keyring inside the home directory.
pub const KEYRING_FILE: &str = "keyring.json";
/// File name of the `file` (encrypted) keyring inside the home directory.
pub const SEALED_KEYRING_FILE: &str = "keyring-file.json";
/// Words in a generated mnemonic (256 bits of entropy).
const MNEMONIC_WORDS: usize = 24;
/// Longest accepted key name.
const MAX_NAME_LEN: usize = 64;

/// What went wrong with a key or the keyring file.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// No key has this name.
    #[error("no key named '{name}' in {path}: list keys with `nesa keys list` or create one with `nesa keys add {name}`")]
    NotFound { name: String, path: PathBuf },
    /// A key with this name exists already.
    #[error("a key named '{name}' already exists in {path}: pick another name or delete it first with `nesa keys delete {name}`")]
    NameTaken { name: String, path: PathBuf },
    /// The same mnemonic is stored under another name.
    #[error("this mnemonic is already stored as key '{existing}' ({address})")]
    AlreadyStored { existing: String, address: Address },
    /// The name has characters that would be awkward on a command line.
    #[error("invalid key name '{0}': use 1-{MAX_NAME_LEN} letters, digits, '-', '_' or '.'")]
    InvalidName(String),
    /// The mnemonic is not a valid English BIP-39 phrase.
    #[error("invalid mnemonic: {0} (expected 12 or 24 English BIP-39 words)")]
    InvalidMnemonic(String),
    /// HD derivation failed (practically impossible for a valid seed).
    #[error("cannot derive a key from the mnemonic: {0}")]
    Derivation(String),
    /// The keyring file could not be read or written.
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// The keyring file is not valid JSON of the expected shape.
    #[error("keyring file {path} is corrupt: {source}")]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
    /// The stored public key does not match the one derived from the stored mnemonic.
    #[error("key '{0}' is inconsistent: its stored address does not match its mnemonic")]
    Inconsistent(String),
    /// The passphrase does not open the `file` keyring.
    #[error("wrong passphrase for the keyring {path}")]
    WrongPassphrase { path: PathBuf },
    /// The `file` backend was asked for, but the home holds a plain (`test`) keyring.
    #[error("{path} is a plain-text keyring (the `test` backend): pass --keyring-backend test (or set NESA_KEYRING_BACKEND=test) to use it, or encrypt it with `nesa keys migrate`")]
    PlainKeyring { path: PathBuf },
    /// No passphrase source for the `file` backend.
    #[error("the keyring is encrypted (`file` backend) and no passphrase was given: set NESA_KEYRING_PASSPHRASE, pass --keyring-passphrase-file <file>, run in a terminal, or use --keyring-backend test for a devnet")]
    NoPassphrase,
    /// The two passphrases typed differ.
    #[error("the passphrases do not match; nothing was written")]
    PassphraseMismatch,
    /// A new keyring's passphrase is too short.
    #[error("the keyring passphrase must have at least {MIN_PASSPHRASE_LEN} characters")]
    WeakPassphrase,
    /// `keys migrate` found an encrypted keyring already.
    #[error("{path} exists already: migrating would overwrite it")]
    SealedExists { path: PathBuf },
    /// The encrypted keyring's fields are damaged.
    #[error("keyring file {path} is damaged: {reason}")]
    Sealed { path: PathBuf, reason: String },
}

/// One stored key. `Debug` hides the mnemonic so it never ends up in logs.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyEntry {
    /// Name the user refers to the key by.
    pub name: String,
    /// Account address of the key.
    pub address: Address,
    /// BIP-39 mnemonic the key is derived from (secret!).
    pub mnemonic: String,
    /// Compressed secp256k1 public key, hex.
    pub pubkey: String,
}

impl KeyEntry {
    /// Derives an entry from a mnemonic, checking it and normalizing its spacing and case.
    fn from_mnemonic(name: &str, phrase: &str) -> Result<Self, KeyError> {
        let mnemonic = parse_mnemonic(phrase)?;
        let signing_key = derive_signing_key(&mnemonic)?;
        let public_key = signing_key.public_key();
        let address = Address::from_public_key(&public_key)
            .map_err(|e| KeyError::Derivation(e.to_string()))?;
        Ok(Self {
            name: name.to_owned(),
            address,
            mnemonic: mnemonic.to_string(),
            pubkey: hex::encode(public_key.to_bytes()),
        })
    }

    /// The signing key of this entry, re-derived from its mnemonic.
    pub fn signing_key(&self) -> Result<SigningKey, KeyError> {
        let signing_key = signing_key_from_mnemonic(&self.mnemonic)?;
        let address = Address::from_public_key(&signing_key.public_key())
            .map_err(|e| KeyError::Derivation(e.to_string()))?;
        // A hand-edited file could pair a mnemonic with someone else's address; refuse to sign then.
        if address != self.address {
            return Err(KeyError::Inconsistent(self.name.clone()));
        }
        Ok(signing_key)
    }
}

impl fmt::Debug for KeyEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyEntry")
            .field("name", &self.name)
            .field("address", &self.address)
            .field("pubkey", &self.pubkey)
            .finish_non_exhaustive()
    }
}

/// On-disk shape of `keyring.json`.
#[derive(Default, Serialize, Deserialize)]
struct KeyringFile {
    keys: Vec<KeyEntry>,
}

/// How the keyring's file is written.
enum Store {
    /// `test` backend: in clear.
    Plain,
    /// `file` backend, unlocked.
    Sealed(Sealer),
    /// `file` backend with no file yet: the passphrase is asked when the first key is stored.
    NewSealed(Box<dyn FnOnce() -> Result<String, KeyError> + Send + Sync>),
}

/// Named keys stored in `<home>/keyring-file.json` (`file` backend) or `<home>/keyring.json`
/// (`test` backend).
pub struct Keyring {
    path: PathBuf,
    keys: Vec<KeyEntry>,
    store: Store,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("path", &self.path)
            .field("keys", &self.keys)
            .field("encrypted", &!matches!(self.store, Store::Plain))
            .finish()
    }
}

fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, KeyError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(KeyError::Io {
            action: "read",
            path: path.to_owned(),
            source,
        }),
    }
}

impl Keyring {
    /// Opens the keyring of `home` with `backend`; `passphrase` is asked (at most once) when
    /// the `file` backend needs it: to unlock an existing file, or to create one when the
    /// first key is stored.
    pub fn open_backend(
        home: &Path,
        backend: KeyringBackend,
        passphrase: impl FnOnce(PassphraseUse) -> Result<String, KeyError> + Send + Sync + 'static,
    ) -> Result<Self, KeyError> {
        if backend == KeyringBackend::Test {
            return Self::open(home);
        }
        let path = home.join(SEALED_KEYRING_FILE);
        let Some(bytes) = read_optional(&path)? else {
            let plain = home.join(KEYRING_FILE);
            if plain.exists() {
                return Err(KeyError::PlainKeyring { path: plain });
            }
            return Ok(Self {
                path,
                keys: Vec::new(),
                store: Store::NewSealed(Box::new(move || passphrase(PassphraseUse::Create))),
            });
        };
        let file: SealedKeyringFile =
            serde_json::from_slice(&bytes).map_err(|source| KeyError::Corrupt {
                path: path.clone(),
                source,
            })?;
        let damaged = |path: &Path| {
            let path = path.to_owned();
            move |e: SealError| match e {
                SealError::WrongPassphrase => KeyError::WrongPassphrase { path },
                SealError::Malformed(reason) => KeyError::Sealed { path, reason },
            }
        };
        let sealer =
            Sealer::unlock(&passphrase(PassphraseUse::Unlock)?, &file).map_err(damaged(&path))?;
        let mut keys = Vec::with_capacity(file.keys.len());
        for entry in file.keys {
            let context = sealed::entry_context(&entry.name, &entry.address);
            let mnemonic = sealer
                .open(&entry.mnemonic, &context)
                .map_err(damaged(&path))?;
            let mnemonic = String::from_utf8(mnemonic).map_err(|_| KeyError::Sealed {
                path: path.clone(),
                reason: format!("the mnemonic of '{}' is not text", entry.name),
            })?;
            keys.push(KeyEntry {
                name: entry.name,
                address: entry.address,
                mnemonic,
                pubkey: entry.pubkey,
            });
        }
        Ok(Self {
            path,
            keys,
            store: Store::Sealed(sealer),
        })
    }

    /// Opens the plain (`test` backend) keyring in `home`; a missing file is an empty keyring
    /// (created on first write).
    pub fn open(home: &Path) -> Result<Self, KeyError> {
        let path = home.join(KEYRING_FILE);
        let keys = match read_optional(&path)? {
            Some(bytes) => {
                let file: KeyringFile =
                    serde_json::from_slice(&bytes).map_err(|source| KeyError::Corrupt {
                        path: path.clone(),
                        source,
                    })?;
                file.keys
            }
            None => Vec::new(),
        };
        Ok(Self {
            path,
            keys,
            store: Store::Plain,
        })
    }

    /// Moves every key of the plain (`test`) keyring of `home` into a new `file` keyring
    /// sealed with `passphrase`, then deletes the plain file; returns the new keyring.
    pub fn migrate_to_file(
        home: &Path,
        passphrase: impl FnOnce(PassphraseUse) -> Result<String, KeyError> + Send + Sync + 'static,
    ) -> Result<Self, KeyError> {
        let path = home.join(SEALED_KEYRING_FILE);
        if path.exists() {
            return Err(KeyError::SealedExists { path });
        }
        let plain = Self::open(home)?;
        if !plain.path.exists() {
            return Err(KeyError::Io {
                action: "find",
                source: std::io::ErrorKind::NotFound.into(),
                path: plain.path,
            });
        }
        let mut sealed = Self {
            path,
            keys: plain.keys.clone(),
            store: Store::NewSealed(Box::new(move || passphrase(PassphraseUse::Create))),
        };
        sealed.save()?;
        fs::remove_file(&plain.path).map_err(|source| KeyError::Io {
            action: "delete",
            path: plain.path.clone(),
            source,
        })?;
        Ok(sealed)
    }

    /// Whether mnemonics are stored encrypted (`file` backend).
    pub fn is_encrypted(&self) -> bool {
        !matches!(self.store, Store::Plain)
    }

    /// Path of the keyring file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates a key from a fresh 24-word mnemonic; the returned entry holds the mnemonic to show once.
    pub fn add(&mut self, name: &str) -> Result<KeyEntry, KeyError> {
        let mut entropy = [0u8; MNEMONIC_WORDS / 3 * 4];
        rand::rngs::OsRng.fill_bytes(&mut entropy);
        let mnemonic = Mnemonic::from_entropy(&entropy)
            .map_err(|e| KeyError::InvalidMnemonic(e.to_string()))?;
        self.insert(KeyEntry::from_mnemonic(name, &mnemonic.to_string())?)
    }

    /// Stores the key of an existing mnemonic under `name`.
    pub fn recover(&mut self, name: &str, mnemonic: &str) -> Result<KeyEntry, KeyError> {
        self.insert(KeyEntry::from_mnemonic(name, mnemonic)?)
    }

    /// The key named `name`.
    pub fn show(&self, name: &str) -> Result<&KeyEntry, KeyError> {
        self.keys
            .iter()
            .find(|entry| entry.name == name)
            .ok_or_else(|| KeyError::NotFound {
                name: name.to_owned(),
                path: self.path.clone(),
            })
    }

    /// All keys, sorted by name.
    pub fn list(&self) -> &[KeyEntry] {
        &self.keys
    }

    /// Removes the key named `name` and returns it.
    pub fn delete(&mut self, name: &str) -> Result<KeyEntry, KeyError> {
        let index = self
            .keys
            .iter()
            .position(|entry| entry.name == name)
            .ok_or_else(|| KeyError::NotFound {
                name: name.to_owned(),
                path: self.path.clone(),
            })?;
        let removed = self.keys.remove(index);
        self.save()?;
        Ok(removed)
    }

    /// The signing key of the key named `name`.
    pub fn signing_key(&self, name: &str) -> Result<SigningKey, KeyError> {
        self.show(name)?.signing_key()
    }

    fn insert(&mut self, entry: KeyEntry) -> Result<KeyEntry, KeyError> {
        validate_name(&entry.name)?;
        if self.keys.iter().any(|existing| existing.name == entry.name) {
            return Err(KeyError::NameTaken {
                name: entry.name,
                path: self.path.clone(),
            });
        }
        if let Some(existing) = self
            .keys
            .iter()
            .find(|existing| existing.address == entry.address)
        {
            return Err(KeyError::AlreadyStored {
                existing: existing.name.clone(),
                address: existing.address,
            });
        }
        self.keys.push(entry.clone());
        self.keys.sort_by(|a, b| a.name.cmp(&b.name));
        if let Err(e) = self.save() {
            self.keys.retain(|existing| existing.name != entry.name);
            return Err(e);
        }
        Ok(entry)
    }

    /// Writes the whole file atomically (private temp file + rename) so a crash never leaves
    /// half a keyring.
    fn save(&mut self) -> Result<(), KeyError> {
        let io_error = |action, path: &Path| {
            let path = path.to_owned();
            move |source| KeyError::Io {
                action,
                path,
                source,
            }
        };
        if let Store::NewSealed(_) = self.store {
            let Store::NewSealed(ask) = std::mem::replace(
                &mut self.store,
                Store::NewSealed(Box::new(|| Err(KeyError::NoPassphrase))),
            ) else {
                unreachable!("matched above")
            };
            let passphrase = ask()?;
            if passphrase.chars().count() < MIN_PASSPHRASE_LEN {
                return Err(KeyError::WeakPassphrase);
            }
            let sealer = Sealer::create(&passphrase).map_err(|e| KeyError::Sealed {
                path: self.path.clone(),
                reason: e.to_string(),
            })?;
            self.store = Store::Sealed(sealer);
        }
        if let Some(home) = self.path.parent() {
            create_private_dir(home).map_err(io_error("create directory", home))?;
        }
        let json = match &self.store {
            Store::Plain => serde_json::to_vec_pretty(&KeyringFile {
                keys: self.keys.clone(),
            }),
            Store::Sealed(sealer) => {
                serde_json::to_vec_pretty(&sealer.seal_file(self.keys.iter().map(|k| {
                    (
                        k.name.as_str(),
                        k.address,
                        k.pubkey.as_str(),
                        k.mnemonic.as_str(),
                    )
                })))
            }
            Store::NewSealed(_) => unreachable!("sealed above"),
        }
        .expect("keyring serializes to JSON");
        write_private_file(&self.path, &json).map_err(io_error("write", &self.path))
    }
}

/// Derives the account key (m/44'/118'/0'/0/0) of a BIP-39 mnemonic, without any keyring.
pub fn signing_key_from_mnemonic(phrase: &str) -> Result<SigningKey, KeyError> {
    derive_signing_key(&parse_mnemonic(phrase)?)
}

fn parse_mnemonic(phrase: &str) -> Result<Mnemonic, KeyError> {
    // Users paste phrases with odd spacing or capitals; BIP-39 words are lowercase, single-spaced.
    let normalized = phrase
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase();
    Mnemonic::parse_in_normalized(Language::English, &normalized)
        .map_err(|e| KeyError::InvalidMnemonic(e.to_string()))
}

fn derive_signing_key(mnemonic: &Mnemonic) -> Result<SigningKey, KeyError> {
    let path: DerivationPath = HD_PATH.parse().expect("HD_PATH is a valid derivation path");
    // No BIP-39 passphrase, as Cosmos wallets derive by default.
    let seed = mnemonic.to_seed("");
    cosmrs::bip32::XPrv::derive_from_path(seed, &path)
        .map(SigningKey::from)
        .map_err(|e| KeyError::Derivation(e.to_string()))
}

fn validate_name(name: &str) -> Result<(), KeyError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if name.is_empty() || name.len() > MAX_NAME_LEN || !name.chars().all(allowed) {
        return Err(KeyError::InvalidName(name.to_owned()));
    }
    Ok(())
}

pub use nesa_types::private::{create_private_dir, write_private_file};

#[cfg(test)]
mod tests {
    use super::*;

    const TEST_MNEMONIC: &str = "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about";
    const TEST_COSMOS_ADDRESS: &str = "cosmos19rl4cm2hmr8afy4kldpxz3fka4jguq0auqdal4";

    use nesa_testkit::TempDir as TempHome;

    fn test_mnemonic_address() -> Address {
        let key = signing_key_from_mnemonic(TEST_MNEMONIC).unwrap();
        Address::from_public_key(&key.public_key()).unwrap()
    }

    #[test]
    fn test_mnemonic_derives_the_known_cosmos_address() {
        let address = test_mnemonic_address();
        assert_eq!(
            address.to_bech32_with_prefix("cosmos").unwrap(),
            TEST_COSMOS_ADDRESS
        );
    }

    #[test]
    fn test_mnemonic_derives_the_nesa_address_of_the_same_bytes() {
        let (_, cosmos_bytes) = bech32::decode(TEST_COSMOS_ADDRESS).unwrap();
        let hrp = bech32::Hrp::parse("nesa").unwrap();
        let expected = bech32::encode::<bech32::Bech32>(hrp, &cosmos_bytes).unwrap();
        assert_eq!(test_mnemonic_address().to_string(), expected);
    }

    #[test]
    fn mnemonic_derivation_is_deterministic_and_ignores_spacing_and_case() {
        let messy = format!("  {}\n", TEST_MNEMONIC.to_uppercase().replace(' ', "   "));
        let a = signing_key_from_mnemonic(TEST_MNEMONIC)
            .unwrap()
            .public_key();
        let b = signing_key_from_mnemonic(&messy).unwrap().public_key();
        assert_eq!(a, b);
    }

    #[test]
    fn mnemonic_with_a_bad_checksum_is_rejected() {
        let bad = TEST_MNEMONIC.replace("about", "abandon");
        assert!(matches!(
            signing_key_from_mnemonic(&bad),
            Err(KeyError::InvalidMnemonic(_))
        ));
    }

    #[test]
    fn keyring_round_trips_through_its_file_with_mode_0600() {
        let home = TempHome::new("roundtrip");
        let mut keyring = Keyring::open(&home.0).unwrap();
        assert!(keyring.list().is_empty());

        let added = keyring.add("alice").unwrap();
        assert_eq!(added.mnemonic.split(' ').count(), 24);
        let recovered = keyring.recover("bob", TEST_MNEMONIC).unwrap();
        assert_eq!(recovered.address, test_mnemonic_address());

        let reopened = Keyring::open(&home.0).unwrap();
        let names: Vec<&str> = reopened.list().iter().map(|k| k.name.as_str()).collect();
        assert_eq!(names, ["alice", "bob"]);
        assert_eq!(reopened.show("alice").unwrap(), &added);
        let alice_key = reopened.signing_key("alice").unwrap();
        assert_eq!(hex::encode(alice_key.public_key().to_bytes()), added.pubkey);

        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(reopened.path()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }

        let mut reopened = reopened;
        reopened.delete("alice").unwrap();
        let after_delete = Keyring::open(&home.0).unwrap();
        assert!(matches!(
            after_delete.show("alice"),
            Err(KeyError::NotFound { .. })
        ));
        assert!(after_delete.show("bob").is_ok());
    }

    #[test]
    fn adding_a_taken_name_is_a_clear_error() {
        let home = TempHome::new("collision");
        let mut keyring = Keyring::open(&home.0).unwrap();
        keyring.add("alice").unwrap();
        let error = keyring.add("alice").unwrap_err();
        assert!(matches!(error, KeyError::NameTaken { .. }));
        assert!(error.to_string().contains("already exists"));
        assert_eq!(Keyring::open(&home.0).unwrap().list().len(), 1);
    }

    #[test]
    fn recovering_a_stored_mnemonic_under_a_new_name_is_rejected() {
        let home = TempHome::new("duplicate");
        let mut keyring = Keyring::open(&home.0).unwrap();
        keyring.recover("first", TEST_MNEMONIC).unwrap();
        assert!(matches!(
            keyring.recover("second", TEST_MNEMONIC),
            Err(KeyError::AlreadyStored { .. })
        ));
    }

    #[test]
    fn key_names_with_spaces_or_slashes_are_rejected() {
        let home = TempHome::new("names");
        let mut keyring = Keyring::open(&home.0).unwrap();
        for name in ["", "my key", "a/b", &"x".repeat(65)] {
            assert!(
                matches!(keyring.add(name), Err(KeyError::InvalidName(_))),
                "{name:?}"
            );
        }
    }

    #[test]
    fn deleting_an_unknown_key_is_a_clear_error() {
        let home = TempHome::new("delete");
        let mut keyring = Keyring::open(&home.0).unwrap();
        assert!(matches!(
            keyring.delete("ghost"),
            Err(KeyError::NotFound { .. })
        ));
    }

    #[test]
    fn key_entry_debug_never_shows_the_mnemonic() {
        let entry = KeyEntry::from_mnemonic("bob", TEST_MNEMONIC).unwrap();
        assert!(!format!("{entry:?}").contains("abandon"));
    }

    const PASSPHRASE: &str = "correct horse battery";

    fn open_file(home: &Path, passphrase: &'static str) -> Result<Keyring, KeyError> {
        Keyring::open_backend(home, KeyringBackend::File, move |_| Ok(passphrase.into()))
    }

    #[test]
    fn a_file_keyring_keeps_no_mnemonic_in_clear_and_reopens_with_its_passphrase() {
        let home = TempHome::new("sealed");
        let mut keyring = open_file(&home.0, PASSPHRASE).unwrap();
        assert!(keyring.is_encrypted());
        let recovered = keyring.recover("bob", TEST_MNEMONIC).unwrap();
        let added = keyring.add("alice").unwrap();
        let path = home.0.join(SEALED_KEYRING_FILE);
        let text = fs::read_to_string(&path).unwrap();
        assert!(!text.contains("abandon"), "{text}");
        assert!(!text.contains(&added.mnemonic));
        assert!(
            text.contains(&recovered.address.to_string()),
            "addresses stay readable"
        );
        assert!(!home.0.join(KEYRING_FILE).exists());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let reopened = open_file(&home.0, PASSPHRASE).unwrap();
        assert_eq!(reopened.show("bob").unwrap(), &recovered);
        assert_eq!(reopened.show("alice").unwrap(), &added);
        assert!(reopened.signing_key("alice").is_ok());
    }

    #[test]
    fn a_wrong_passphrase_is_a_clear_error_even_for_an_empty_keyring() {
        let home = TempHome::new("wrong");
        let mut keyring = open_file(&home.0, PASSPHRASE).unwrap();
        keyring.add("alice").unwrap();
        keyring.delete("alice").unwrap();
        let error = open_file(&home.0, "not the passphrase").unwrap_err();
        assert!(matches!(error, KeyError::WrongPassphrase { .. }), "{error}");
        assert!(error.to_string().contains("wrong passphrase"));
    }

    #[test]
    fn a_new_file_keyring_asks_its_passphrase_only_when_a_key_is_stored() {
        let home = TempHome::new("lazy");
        let keyring = Keyring::open_backend(&home.0, KeyringBackend::File, |_| {
            panic!("listing an empty keyring needs no passphrase")
        })
        .unwrap();
        assert!(keyring.list().is_empty());
        let mut keyring = Keyring::open_backend(&home.0, KeyringBackend::File, |purpose| {
            assert_eq!(purpose, PassphraseUse::Create);
            Ok("short".into())
        })
        .unwrap();
        assert!(matches!(
            keyring.add("alice"),
            Err(KeyError::WeakPassphrase)
        ));
        assert!(!home.0.join(SEALED_KEYRING_FILE).exists());
    }

    #[test]
    fn a_plain_keyring_keeps_loading_with_the_test_backend_and_is_named_by_the_file_backend() {
        let home = TempHome::new("legacy");
        Keyring::open(&home.0)
            .unwrap()
            .recover("bob", TEST_MNEMONIC)
            .unwrap();
        let test = Keyring::open_backend(&home.0, KeyringBackend::Test, |_| {
            panic!("the test backend has no passphrase")
        })
        .unwrap();
        assert!(!test.is_encrypted());
        assert_eq!(test.show("bob").unwrap().address, test_mnemonic_address());
        let error = open_file(&home.0, PASSPHRASE).unwrap_err();
        assert!(matches!(error, KeyError::PlainKeyring { .. }));
        assert!(
            error.to_string().contains("--keyring-backend test"),
            "{error}"
        );
    }

    #[test]
    fn a_mnemonic_moved_to_another_entry_does_not_open() {
        let home = TempHome::new("swap");
        let mut keyring = open_file(&home.0, PASSPHRASE).unwrap();
        keyring.add("alice").unwrap();
        keyring.recover("bob", TEST_MNEMONIC).unwrap();
        let path = home.0.join(SEALED_KEYRING_FILE);
        let mut file: SealedKeyringFile =
            serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        let alice = file.keys[0].mnemonic.clone();
        file.keys[1].mnemonic = alice;
        fs::write(&path, serde_json::to_vec(&file).unwrap()).unwrap();
        assert!(open_file(&home.0, PASSPHRASE).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn a_link_planted_beside_the_keyring_never_receives_the_secret() {
        let home = TempHome::new("link");
        fs::create_dir_all(&home.0).unwrap();
        let stolen = home.0.join("stolen");
        fs::write(&stolen, b"").unwrap();
        // Where a writer that reuses a fixed temp name, or writes in place, would follow a link.
        for planted in ["keyring.json.tmp", ".keyring.json.tmp", "exported.key"] {
            std::os::unix::fs::symlink(&stolen, home.0.join(planted)).unwrap();
        }
        let mut keyring = Keyring::open(&home.0).unwrap();
        keyring.recover("bob", TEST_MNEMONIC).unwrap();
        write_private_file(&home.0.join("exported.key"), b"secret").unwrap();
        assert_eq!(fs::read(&stolen).unwrap(), b"");
        use std::os::unix::fs::PermissionsExt;
        for written in [KEYRING_FILE, "exported.key"] {
            let meta = fs::symlink_metadata(home.0.join(written)).unwrap();
            assert!(meta.is_file(), "{written} replaced the link");
            assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{written}");
        }
    }

    #[test]
    fn migrating_a_plain_keyring_seals_every_key_and_removes_the_plain_file() {
        let home = TempHome::new("migrate");
        let mut plain = Keyring::open(&home.0).unwrap();
        let bob = plain.recover("bob", TEST_MNEMONIC).unwrap();
        let alice = plain.add("alice").unwrap();
        let migrated = Keyring::migrate_to_file(&home.0, |_| Ok(PASSPHRASE.into())).unwrap();
        assert!(migrated.is_encrypted());
        assert!(!home.0.join(KEYRING_FILE).exists());
        let text = fs::read_to_string(home.0.join(SEALED_KEYRING_FILE)).unwrap();
        assert!(!text.contains("abandon"));
        let reopened = open_file(&home.0, PASSPHRASE).unwrap();
        assert_eq!(reopened.show("bob").unwrap(), &bob);
        assert_eq!(reopened.show("alice").unwrap(), &alice);
        assert!(matches!(
            Keyring::migrate_to_file(&home.0, |_| Ok(PASSPHRASE.into())),
            Err(KeyError::SealedExists { .. })
        ));
    }
}
