//! Remembers signatures that verified, so a transaction checked at CheckTx is not verified
//! again in PrepareProposal, ProcessProposal and FinalizeBlock. The key binds everything the
//! signature covers (the raw tx hash covers body, auth info and signature; plus the account
//! number and public key; the chain id is fixed per node), so a hit can only repeat a success.

use std::collections::HashSet;
use std::sync::Mutex;

use sha2::{Digest, Sha256};

/// Entries kept before the cache starts over (a few blocks' worth).
const CAPACITY: usize = 200_000;

/// Verified-signature cache shared by all ABCI connections.
#[derive(Debug, Default)]
pub struct SignatureCache {
    verified: Mutex<HashSet<[u8; 32]>>,
}

impl SignatureCache {
    fn key(tx_hash: &[u8; 32], account_number: u64, public_key: &[u8; 33]) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(tx_hash);
        hasher.update(account_number.to_be_bytes());
        hasher.update(public_key);
        hasher.finalize().into()
    }

    /// True if this exact signature already verified for this account and key.
    pub fn contains(&self, tx_hash: &[u8; 32], account_number: u64, public_key: &[u8; 33]) -> bool {
        let key = Self::key(tx_hash, account_number, public_key);
        self.verified
            .lock()
            .expect("signature cache lock")
            .contains(&key)
    }

    /// Records a successful verification.
    pub fn insert(&self, tx_hash: &[u8; 32], account_number: u64, public_key: &[u8; 33]) {
        let key = Self::key(tx_hash, account_number, public_key);
        let mut verified = self.verified.lock().expect("signature cache lock");
        if verified.len() >= CAPACITY {
            verified.clear();
        }
        verified.insert(key);
    }
}
