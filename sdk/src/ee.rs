//! Equivariant Encryption (`ee-v1`) keys as a wallet holds them: key files (JSON, mode 0600)
//! and the keystore of imported keys, one per kernel.
//!
//! The key itself and the maps derived from it (the vocabulary permutation the wallet applies
//! to token ids) are the engine's ([`nesa_engine::ee::key`]), so `nesa-node kernel encrypt` and
//! the wallet derive the same permutation from the same file; they are re-exported here.

use std::fs;
use std::path::{Path, PathBuf};

pub use nesa_engine::ee::key::{EeKey, KeyError, Transform, Vocabulary, SCHEME};

use crate::keys::{create_private_dir, write_private_file};

/// Directory of imported keys inside a wallet home.
pub const KEYSTORE_DIR: &str = "ee";

/// What can go wrong with a key file or the keystore.
#[derive(Debug, thiserror::Error)]
pub enum EeError {
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not an ee-v1 key file: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("no ee-v1 key for kernel weights {kernel} in {dir}: import the key file with `nesa keys ee import <file>`")]
    Missing { kernel: String, dir: PathBuf },
    #[error("{value:?} is not a kernel weights hash: expected 64 hex characters (sha256)")]
    BadKernelHash { value: String },
}

/// The kernel weights hash `value` in its one file-name form: exactly 64 hex characters,
/// lower case. A key file names its kernel itself, so this is what keeps a crafted file from
/// choosing a path outside the keystore.
pub fn kernel_hash(value: &str) -> Result<String, EeError> {
    if value.len() != 64 || !value.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(EeError::BadKernelHash {
            value: value.chars().take(80).collect(),
        });
    }
    Ok(value.to_ascii_lowercase())
}

/// Reading and writing an [`EeKey`] as a file.
pub trait KeyFile: Sized {
    /// Reads a key file.
    fn load(path: &Path) -> Result<Self, EeError>;
    /// Writes the key file with mode 0600 (its directory is created 0700 if missing).
    fn save(&self, path: &Path) -> Result<(), EeError>;
}

impl KeyFile for EeKey {
    fn load(path: &Path) -> Result<Self, EeError> {
        let bytes = fs::read(path).map_err(|source| EeError::Io {
            action: "read the key file",
            path: path.to_owned(),
            source,
        })?;
        EeKey::from_json(&bytes).map_err(|e| EeError::Corrupt {
            path: path.to_owned(),
            reason: match e {
                KeyError::Invalid(reason) => reason,
                other => other.to_string(),
            },
        })
    }

    fn save(&self, path: &Path) -> Result<(), EeError> {
        let io = |action, source| EeError::Io {
            action,
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.exists() {
                create_private_dir(dir).map_err(|e| io("create the directory of", e))?;
            }
        }
        write_private_file(path, &self.to_json()).map_err(|e| io("write the key file", e))
    }
}

/// A wallet's imported ee-v1 keys: `<home>/ee/<kernel sha256>.json`, one per kernel.
pub struct Keystore {
    dir: PathBuf,
}

impl Keystore {
    /// The keystore of a wallet home.
    pub fn open(home: &Path) -> Self {
        Self {
            dir: home.join(KEYSTORE_DIR),
        }
    }

    fn path(&self, kernel_sha256: &str) -> Result<PathBuf, EeError> {
        Ok(self
            .dir
            .join(format!("{}.json", kernel_hash(kernel_sha256)?)))
    }

    /// Copies a key file into the keystore; returns the kernel hash it is filed under.
    pub fn import(&self, file: &Path) -> Result<String, EeError> {
        let key = EeKey::load(file)?;
        let kernel = kernel_hash(key.kernel_sha256.as_deref().ok_or(KeyError::Unbound)?)?;
        key.save(&self.path(&kernel)?)?;
        Ok(kernel)
    }

    /// The key for the kernel with weights hash `weights_sha256`.
    pub fn find(&self, weights_sha256: &[u8]) -> Result<EeKey, EeError> {
        let kernel = hex::encode(weights_sha256);
        let path = self.path(&kernel)?;
        if !path.exists() {
            return Err(EeError::Missing {
                kernel,
                dir: self.dir.clone(),
            });
        }
        let key = EeKey::load(&path)?;
        key.check_kernel(weights_sha256)?;
        Ok(key)
    }

    /// Writes the key for `kernel_sha256` (hex) to `out` (mode 0600).
    pub fn export(&self, kernel_sha256: &str, out: &Path) -> Result<(), EeError> {
        let bytes = hex::decode(kernel_hash(kernel_sha256)?).expect("checked hex");
        self.find(&bytes)?.save(out)
    }

    /// Kernel hashes with a key here.
    pub fn list(&self) -> Result<Vec<String>, EeError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(source) => {
                return Err(EeError::Io {
                    action: "list",
                    path: self.dir.clone(),
                    source,
                })
            }
        };
        let mut kernels: Vec<String> = entries
            .filter_map(|entry| {
                let name = entry.ok()?.file_name().into_string().ok()?;
                name.strip_suffix(".json").map(str::to_owned)
            })
            .collect();
        kernels.sort();
        Ok(kernels)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory name under the system temp dir.
    fn scratch_dir(label: &str) -> PathBuf {
        let unique = format!("{label}-{}-{}", std::process::id(), rand::random::<u32>());
        std::env::temp_dir().join(unique)
    }

    fn key() -> EeKey {
        EeKey::from_seed([7; 32], Transform::SignedPermutation, 1000)
    }

    #[test]
    fn key_files_are_private_and_bound_to_one_kernel() {
        let dir = std::env::temp_dir().join(format!("nesa-ee-{}", std::process::id()));
        let path = dir.join("kernel.key");
        let mut key = key();
        key.kernel_sha256 = Some(hex::encode([1u8; 32]));
        key.save(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let loaded = EeKey::load(&path).unwrap();
        assert_eq!(loaded, key);
        loaded.check_kernel(&[1u8; 32]).unwrap();
        assert!(matches!(
            loaded.check_kernel(&[2u8; 32]),
            Err(KeyError::WrongKernel { .. })
        ));

        let store = Keystore::open(&dir.join("wallet"));
        assert!(matches!(
            store.find(&[1u8; 32]),
            Err(EeError::Missing { .. })
        ));
        assert_eq!(store.import(&path).unwrap(), hex::encode([1u8; 32]));
        assert_eq!(store.find(&[1u8; 32]).unwrap(), key);
        assert_eq!(store.list().unwrap(), vec![hex::encode([1u8; 32])]);
        let out = dir.join("exported.key");
        store.export(&hex::encode([1u8; 32]), &out).unwrap();
        assert_eq!(EeKey::load(&out).unwrap(), key);

        fs::write(&path, b"{not json").unwrap();
        assert!(matches!(EeKey::load(&path), Err(EeError::Corrupt { .. })));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_key_file_naming_a_path_instead_of_a_kernel_hash_is_refused() {
        let dir = scratch_dir("nesa-ee-traversal");
        let wallet = dir.join("wallet");
        let store = Keystore::open(&wallet);
        for crafted in [
            "../../escaped".to_string(),
            format!("../{}", "a".repeat(61)),
            "/tmp/abs".to_string(),
            "a".repeat(63),
            "g".repeat(64),
        ] {
            let mut key = key();
            key.kernel_sha256 = Some(crafted.clone());
            let file = dir.join("crafted.key");
            key.save(&file).unwrap();
            assert!(
                matches!(store.import(&file), Err(EeError::BadKernelHash { .. })),
                "{crafted}"
            );
        }
        assert!(!dir.join("escaped.json").exists());
        assert!(!wallet.join(KEYSTORE_DIR).exists(), "nothing was written");
        assert!(matches!(
            store.export("../../x", &dir.join("out")),
            Err(EeError::BadKernelHash { .. })
        ));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_upper_case_kernel_hash_is_filed_in_lower_case() {
        let dir = scratch_dir("nesa-ee-case");
        let mut key = key();
        key.kernel_sha256 = Some(hex::encode_upper([0xab; 32]));
        let file = dir.join("upper.key");
        key.save(&file).unwrap();
        let store = Keystore::open(&dir.join("wallet"));
        assert_eq!(store.import(&file).unwrap(), hex::encode([0xab; 32]));
        assert_eq!(store.list().unwrap(), vec![hex::encode([0xab; 32])]);
        fs::remove_dir_all(&dir).unwrap();
    }
}
