//! The validator key, in CometBFT's `priv_validator_key.json` format, so the same home can be
//! handed to a CometBFT node.

use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tendermint::{account, PrivateKey, PublicKey};

/// A validator's consensus key.
#[derive(Serialize, Deserialize)]
pub struct ValidatorKey {
    pub address: account::Id,
    pub pub_key: PublicKey,
    pub priv_key: PrivateKey,
}

impl ValidatorKey {
    /// A fresh random ed25519 key.
    pub fn generate() -> Self {
        let signing = ed25519_consensus::SigningKey::new(rand::thread_rng());
        let priv_key = PrivateKey::from_ed25519_consensus(signing);
        let pub_key = priv_key.public_key();
        ValidatorKey {
            address: address_of(&pub_key),
            pub_key,
            priv_key,
        }
    }

    /// Reads `priv_validator_key.json`.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            anyhow::anyhow!(
                "cannot read validator key {}: {e} (run `nesad init` first)",
                path.display()
            )
        })?;
        serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("validator key {} is malformed: {e}", path.display()))
    }

    /// Writes `priv_validator_key.json` readable by its owner only.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(self)?;
        nesa_types::private::write_private_file(path, (text + "\n").as_bytes())?;
        Ok(())
    }

    /// Signs `message` (a canonical vote).
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        let signing = self
            .priv_key
            .ed25519_signing_key()
            .expect("validator keys are ed25519");
        let signing =
            ed25519_consensus::SigningKey::try_from(signing.clone()).expect("valid ed25519 key");
        signing.sign(message).to_bytes().to_vec()
    }
}

/// CometBFT's validator address: the first 20 bytes of sha256(public key).
pub fn address_of(pub_key: &PublicKey) -> account::Id {
    let digest = Sha256::digest(pub_key.to_bytes());
    account::Id::new(digest[..20].try_into().expect("20 bytes"))
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn a_saved_validator_key_is_readable_by_its_owner_only() {
        let dir = std::env::temp_dir().join(format!("nesad-validator-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("priv_validator_key.json");
        ValidatorKey::generate().save(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(ValidatorKey::load(&path).is_ok());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
