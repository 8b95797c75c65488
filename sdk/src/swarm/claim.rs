//! Pipeline claims: how the driver of a market pipeline shows a shard which query and seat a
//! stream serves.
//!
//! A shard assigned to span `s` of pipeline `p` of a query commits on chain to the record of
//! what it computed for that pipeline, so it must know which of its streams is the pipeline's:
//! anyone may open a shard stream (a spare serving another pipeline, a client trying the
//! node), and a stranger feeding it rows must not make it commit to them. The driver (the
//! node assigned span 0 of the pipeline) signs each hop's [`Claim`] with its account key:
//! sha256 over a domain tag, the market contract, the query, the pipeline and the blocks.
//! The shard checks the signer's address is the driver the chain assigned; the first valid
//! claim of its seat is the one it records, so replaying a seen claim gains nothing.

use std::ops::Range;

use cosmrs::crypto::secp256k1::SigningKey;
use cosmrs::crypto::PublicKey;
use k256::ecdsa::signature::Verifier;
use serde::{Deserialize, Serialize};

use crate::address::AddressExt;
use crate::Address;

const DOMAIN: &[u8] = b"nesa/pipeline-claim/v1\0";

/// The driver's claim on a stream, sent with `open`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claim {
    pub query_id: u64,
    pub pipeline: u8,
    /// The driver's compressed secp256k1 public key (hex).
    pub public_key: String,
    /// Its ECDSA signature over [`claim_message`] (64 bytes, hex).
    pub signature: String,
}

/// A claim that does not hold.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    #[error("the claim's public key is not a compressed secp256k1 key")]
    PublicKey,
    #[error("the claim's signature is not 64 bytes of hex")]
    Malformed,
    #[error("the claim's signature does not verify")]
    Signature,
}

/// The bytes a driver signs for the hop running `layers` of pipeline `pipeline` of query
/// `query_id` on `market`.
pub fn claim_message(market: &str, query_id: u64, pipeline: u8, layers: &Range<usize>) -> Vec<u8> {
    let mut message = Vec::with_capacity(DOMAIN.len() + market.len() + 18);
    message.extend_from_slice(DOMAIN);
    message.extend_from_slice(market.as_bytes());
    message.push(0);
    message.extend_from_slice(&query_id.to_be_bytes());
    message.push(pipeline);
    message.extend_from_slice(&(layers.start as u32).to_be_bytes());
    message.extend_from_slice(&(layers.end as u32).to_be_bytes());
    message
}

/// Signs claims for the hops of one pipeline.
pub struct Claimer {
    pub key: std::sync::Arc<SigningKey>,
    pub market: String,
    pub query_id: u64,
    pub pipeline: u8,
}

impl std::fmt::Debug for Claimer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Claimer")
            .field("market", &self.market)
            .field("query_id", &self.query_id)
            .field("pipeline", &self.pipeline)
            .finish_non_exhaustive()
    }
}

impl Claimer {
    /// The claim for the hop running `layers`.
    pub fn claim(&self, layers: &Range<usize>) -> Claim {
        let message = claim_message(&self.market, self.query_id, self.pipeline, layers);
        let signature = self
            .key
            .sign(&message)
            .expect("signing with an in-memory key does not fail");
        Claim {
            query_id: self.query_id,
            pipeline: self.pipeline,
            public_key: hex::encode(self.key.public_key().to_bytes()),
            signature: hex::encode(signature.to_bytes()),
        }
    }
}

impl Claim {
    /// The address of the key that signed this claim for `layers` on `market`.
    pub fn signer(&self, market: &str, layers: &Range<usize>) -> Result<Address, ClaimError> {
        let key_bytes = hex::decode(&self.public_key).map_err(|_| ClaimError::PublicKey)?;
        if key_bytes.len() != 33 {
            return Err(ClaimError::PublicKey);
        }
        let verifying = k256::ecdsa::VerifyingKey::from_sec1_bytes(&key_bytes)
            .map_err(|_| ClaimError::PublicKey)?;
        let signature = hex::decode(&self.signature).map_err(|_| ClaimError::Malformed)?;
        let signature =
            k256::ecdsa::Signature::from_slice(&signature).map_err(|_| ClaimError::Malformed)?;
        let message = claim_message(market, self.query_id, self.pipeline, layers);
        verifying
            .verify(&message, &signature)
            .map_err(|_| ClaimError::Signature)?;
        Address::from_public_key(&PublicKey::from(&verifying)).map_err(|_| ClaimError::PublicKey)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claimer() -> Claimer {
        Claimer {
            key: std::sync::Arc::new(SigningKey::from_slice(&[7; 32]).unwrap()),
            market: "nesa1market".into(),
            query_id: 9,
            pipeline: 1,
        }
    }

    #[test]
    fn a_claim_names_its_signer_for_the_blocks_and_market_it_was_signed_for() {
        let claimer = claimer();
        let claim = claimer.claim(&(15..30));
        let expected = Address::from_public_key(&claimer.key.public_key()).unwrap();
        assert_eq!(claim.signer("nesa1market", &(15..30)), Ok(expected));
        // Other blocks, another market, another query or pipeline: the signature fails.
        assert_eq!(
            claim.signer("nesa1market", &(0..15)),
            Err(ClaimError::Signature)
        );
        assert_eq!(
            claim.signer("nesa1other", &(15..30)),
            Err(ClaimError::Signature)
        );
        for forged in [
            Claim {
                query_id: 10,
                ..claim.clone()
            },
            Claim {
                pipeline: 0,
                ..claim.clone()
            },
        ] {
            assert_eq!(
                forged.signer("nesa1market", &(15..30)),
                Err(ClaimError::Signature)
            );
        }
    }

    #[test]
    fn malformed_claims_are_refused() {
        let claim = claimer().claim(&(0..1));
        let bad_key = Claim {
            public_key: "02".into(),
            ..claim.clone()
        };
        assert_eq!(
            bad_key.signer("nesa1market", &(0..1)),
            Err(ClaimError::PublicKey)
        );
        let bad_signature = Claim {
            signature: "zz".into(),
            ..claim
        };
        assert_eq!(
            bad_signature.signer("nesa1market", &(0..1)),
            Err(ClaimError::Malformed)
        );
    }
}
