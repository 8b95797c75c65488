//! The query seed, which places the fingerprint positions.
//!
//! It starts at submission from the running seed (a hash chain over every salt that opened
//! its commitment), the query id, the user's entropy and the draw input, and the draw mixes in
//! the winning tickets' outputs. Nobody knows the positions before the draw, and no single
//! party chooses them. Who serves a query is not derived from this seed: see
//! `nesa_market::sortition`.

use cosmwasm_std::Addr;
use nesa_market::market::QueryId;
use nesa_market::Hash32;
use sha2::{Digest, Sha256};

const SUBMIT_DOMAIN: &[u8] = b"nesa/query-seed/v2";
const DRAWN_DOMAIN: &[u8] = b"nesa/query-seed-drawn/v2";
const SALT_DOMAIN: &[u8] = b"nesa/running-seed/v1";
const GENESIS_DOMAIN: &[u8] = b"nesa/market-genesis-seed/v1";

/// `sha256(domain ‖ running_seed ‖ query_id BE ‖ user_entropy ‖ draw_input)`.
pub fn initial_seed(
    running_seed: &Hash32,
    query_id: QueryId,
    user_entropy: &[u8],
    draw_input: &Hash32,
) -> Hash32 {
    let mut hasher = Sha256::new();
    hasher.update(SUBMIT_DOMAIN);
    hasher.update(running_seed);
    hasher.update(query_id.to_be_bytes());
    hasher.update(user_entropy);
    hasher.update(draw_input);
    hasher.finalize().into()
}

/// `sha256(domain ‖ initial ‖ output of each seat's ticket, in seat order)`.
pub fn drawn_seed(initial: &Hash32, seat_outputs: &[Hash32]) -> Hash32 {
    let mut hasher = Sha256::new();
    hasher.update(DRAWN_DOMAIN);
    hasher.update(initial);
    for output in seat_outputs {
        hasher.update(output);
    }
    hasher.finalize().into()
}

/// The running seed after a reveal whose salt opened its commitment.
pub fn mix_salt(running_seed: &Hash32, node: &Addr, query_id: QueryId, salt: &[u8]) -> Hash32 {
    let mut hasher = Sha256::new();
    hasher.update(SALT_DOMAIN);
    hasher.update(running_seed);
    hasher.update(node.as_bytes());
    hasher.update(query_id.to_be_bytes());
    hasher.update(salt);
    hasher.finalize().into()
}

/// The running seed at instantiation.
pub fn genesis_seed(contract: &Addr, height: u64, time_nanos: u64) -> Hash32 {
    let mut hasher = Sha256::new();
    hasher.update(GENESIS_DOMAIN);
    hasher.update(contract.as_bytes());
    hasher.update(height.to_be_bytes());
    hasher.update(time_nanos.to_be_bytes());
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_input_of_the_seed_changes_it() {
        let base = initial_seed(&[0; 32], 1, &[1; 32], &[2; 32]);
        assert_ne!(base, initial_seed(&[9; 32], 1, &[1; 32], &[2; 32]));
        assert_ne!(base, initial_seed(&[0; 32], 2, &[1; 32], &[2; 32]));
        assert_ne!(base, initial_seed(&[0; 32], 1, &[3; 32], &[2; 32]));
        assert_ne!(base, initial_seed(&[0; 32], 1, &[1; 32], &[4; 32]));
        assert_ne!(drawn_seed(&base, &[[1; 32]]), drawn_seed(&base, &[[2; 32]]));
        assert_ne!(drawn_seed(&base, &[[1; 32]]), base);
        let node = Addr::unchecked("n");
        assert_ne!(
            mix_salt(&base, &node, 1, b"a"),
            mix_salt(&base, &node, 1, b"b")
        );
    }
}
