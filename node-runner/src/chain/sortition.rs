//! This node's sortition key: the BLS key whose signatures of a query's draw input are its
//! tickets in that query's draw (`nesa_market::sortition`). It is derived from the runner's key
//! secret, so it needs no file of its own and a runner restored from its mnemonic signs with
//! the key its profile registered.

use cosmwasm_std::HexBinary;
use nesa_market::sortition::signer::TicketKey;
use nesa_market::staking::SortitionKey;
use nesa_market::Hash32;

/// Signs this node's tickets.
pub struct Sortition {
    key: TicketKey,
}

impl Sortition {
    /// The key of the runner whose secret is `secret` (the one its salts come from; the key is
    /// derived under its own domain, so neither reveals the other).
    pub fn from_secret(secret: &[u8; 32]) -> Self {
        Sortition {
            key: TicketKey::from_seed(secret),
        }
    }

    /// The key as this node's profile registers it: the public key and the proof that `node`
    /// holds it.
    pub fn profile_key(&self, node: &str) -> SortitionKey {
        SortitionKey {
            public_key: HexBinary::from(self.key.public_key().to_vec()),
            proof: HexBinary::from(self.key.proof_of_possession(node).to_vec()),
        }
    }

    /// This node's ticket for the query whose draw input is `draw_input`.
    pub fn ticket(&self, draw_input: &Hash32) -> HexBinary {
        HexBinary::from(self.key.ticket(draw_input).to_vec())
    }
}

#[cfg(test)]
mod tests {
    use nesa_market::sortition::{PUBLIC_KEY_BYTES, SIGNATURE_BYTES};

    use super::*;

    #[test]
    fn the_key_follows_the_secret_and_binds_the_node() {
        let a = Sortition::from_secret(&[1; 32]);
        let key = a.profile_key("nesa1node");
        assert_eq!(key.public_key.len(), PUBLIC_KEY_BYTES);
        assert_eq!(key.proof.len(), SIGNATURE_BYTES);
        // A restarted runner derives the same key, and so registers nothing new.
        assert_eq!(
            Sortition::from_secret(&[1; 32]).profile_key("nesa1node"),
            key
        );
        let other = Sortition::from_secret(&[2; 32]).profile_key("nesa1node");
        assert_ne!(other.public_key, key.public_key);
        assert_ne!(a.profile_key("nesa1thief").proof, key.proof);
        assert_eq!(a.ticket(&[7; 32]), a.ticket(&[7; 32]));
        assert_ne!(a.ticket(&[7; 32]), a.ticket(&[8; 32]));
    }
}
