//! The `file` keyring backend's format, `<home>/keyring-file.json`: names, addresses and public
//! keys in clear, each mnemonic sealed with XChaCha20-Poly1305 under a key derived from the
//! passphrase with scrypt (as the Cosmos SDK's `file` backend seals its keys with a passphrase).
//! A sealed check value tells a wrong passphrase apart even in an empty keyring.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::address::Address;

/// The one scheme this format knows.
pub const SCHEME: &str = "scrypt+xchacha20poly1305";
/// scrypt cost: N = 2^15, r = 8, p = 1 (32 MiB, a fraction of a second per unlock).
const LOG_N: u8 = 15;
const R: u32 = 8;
const P: u32 = 1;
/// Minimum passphrase length, as the Cosmos SDK asks.
pub const MIN_PASSPHRASE_LEN: usize = 8;
const CHECK: &[u8] = b"nesa keyring passphrase check";

/// What can go wrong sealing or opening.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The AEAD tag did not verify: another passphrase, or a damaged file.
    #[error("wrong passphrase")]
    WrongPassphrase,
    /// A field is not what the format says.
    #[error("{0}")]
    Malformed(String),
}

/// scrypt's parameters and salt, kept with the file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    /// log2 of the CPU/memory cost N.
    pub log_n: u8,
    /// Block size.
    pub r: u32,
    /// Parallelism.
    pub p: u32,
    /// 16 random bytes, hex.
    pub salt: String,
}

/// One sealed value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    /// 24 random bytes, hex.
    pub nonce: String,
    /// Ciphertext and tag, hex.
    pub ciphertext: String,
}

/// A stored key: public fields in clear, the mnemonic sealed (bound to name and address).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SealedEntry {
    /// The key's name.
    pub name: String,
    /// Its account address.
    pub address: Address,
    /// Its compressed secp256k1 public key, hex.
    pub pubkey: String,
    /// Its BIP-39 mnemonic, sealed.
    pub mnemonic: Sealed,
}

/// On-disk shape of `keyring-file.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SealedKeyringFile {
    /// [`SCHEME`].
    pub scheme: String,
    /// How the passphrase becomes the sealing key.
    pub kdf: KdfParams,
    /// A fixed text sealed with the key: opens only with the right passphrase.
    pub check: Sealed,
    /// The keys, sorted by name.
    pub keys: Vec<SealedEntry>,
}

/// The key derived from the passphrase, with the parameters that derived it.
#[derive(Clone)]
pub struct Sealer {
    kdf: KdfParams,
    cipher: XChaCha20Poly1305,
}

impl Sealer {
    /// A sealer for a new keyring: fresh salt, the default cost.
    pub fn create(passphrase: &str) -> Result<Self, SealError> {
        let mut salt = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut salt);
        Self::derive(
            passphrase,
            KdfParams {
                log_n: LOG_N,
                r: R,
                p: P,
                salt: hex::encode(salt),
            },
        )
    }

    /// The sealer of an existing file; checks the passphrase against the file's check value.
    pub fn unlock(passphrase: &str, file: &SealedKeyringFile) -> Result<Self, SealError> {
        if file.scheme != SCHEME {
            return Err(SealError::Malformed(format!(
                "unknown scheme '{}' (expected {SCHEME})",
                file.scheme
            )));
        }
        let sealer = Self::derive(passphrase, file.kdf.clone())?;
        if sealer.open(&file.check, b"check")? != CHECK {
            return Err(SealError::WrongPassphrase);
        }
        Ok(sealer)
    }

    fn derive(passphrase: &str, kdf: KdfParams) -> Result<Self, SealError> {
        let salt = hex::decode(&kdf.salt)
            .map_err(|e| SealError::Malformed(format!("the salt is not hex: {e}")))?;
        let params = scrypt::Params::new(kdf.log_n, kdf.r, kdf.p, 32)
            .map_err(|e| SealError::Malformed(format!("scrypt parameters: {e}")))?;
        let mut key = [0u8; 32];
        scrypt::scrypt(passphrase.as_bytes(), &salt, &params, &mut key)
            .map_err(|e| SealError::Malformed(format!("scrypt: {e}")))?;
        let cipher = XChaCha20Poly1305::new(&Key::from(key));
        key.fill(0);
        Ok(Sealer { kdf, cipher })
    }

    /// Seals `secret`, bound to `context` (it must be given again to open it).
    pub fn seal(&self, secret: &[u8], context: &[u8]) -> Sealed {
        let mut nonce = [0u8; 24];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let ciphertext = self
            .cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: secret,
                    aad: context,
                },
            )
            .expect("XChaCha20-Poly1305 seals any length we store");
        Sealed {
            nonce: hex::encode(nonce),
            ciphertext: hex::encode(ciphertext),
        }
    }

    /// Opens what [`Self::seal`] sealed with the same `context`.
    pub fn open(&self, sealed: &Sealed, context: &[u8]) -> Result<Vec<u8>, SealError> {
        let nonce: [u8; 24] = hex::decode(&sealed.nonce)
            .ok()
            .and_then(|n| n.try_into().ok())
            .ok_or_else(|| SealError::Malformed("a nonce is not 24 hex bytes".into()))?;
        let ciphertext = hex::decode(&sealed.ciphertext)
            .map_err(|e| SealError::Malformed(format!("a ciphertext is not hex: {e}")))?;
        self.cipher
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: &ciphertext,
                    aad: context,
                },
            )
            .map_err(|_| SealError::WrongPassphrase)
    }

    /// A file holding `keys` (name, address, pubkey, mnemonic).
    pub fn seal_file<'a>(
        &self,
        keys: impl Iterator<Item = (&'a str, Address, &'a str, &'a str)>,
    ) -> SealedKeyringFile {
        SealedKeyringFile {
            scheme: SCHEME.into(),
            kdf: self.kdf.clone(),
            check: self.seal(CHECK, b"check"),
            keys: keys
                .map(|(name, address, pubkey, mnemonic)| SealedEntry {
                    name: name.into(),
                    address,
                    pubkey: pubkey.into(),
                    mnemonic: self.seal(mnemonic.as_bytes(), &entry_context(name, &address)),
                })
                .collect(),
        }
    }
}

/// What a mnemonic is bound to: moving it to another entry makes it unreadable.
pub fn entry_context(name: &str, address: &Address) -> Vec<u8> {
    format!("nesa-keyring/v1/{name}/{address}").into_bytes()
}
