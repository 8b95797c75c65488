//! The devnet's market, written once: the parameters a fresh devnet's contracts run with
//! (genesis instantiates them with these), the staking rules, and the kernel a devnet node
//! runner registers by default. Genesis, the contracts' tests, the CLI's defaults and the
//! node runner all derive from here, so the values cannot drift apart.

use cosmwasm_std::{Decimal, Uint128};

use crate::market::{self, MarketParams, SlashFractions};
use crate::staking;
use crate::DENOM;

/// Blocks after submission during which the assigned nodes may commit: room to generate on a
/// loaded machine (a query settles as soon as every node revealed, so the window only delays
/// faulty rounds).
pub const COMMIT_BLOCKS: u64 = 15;
/// Blocks after the commit deadline during which committed nodes may reveal.
pub const REVEAL_BLOCKS: u64 = 10;
/// Nodes per query when the query does not say.
pub const DEFAULT_REDUNDANCY: u8 = 3;
/// Most nodes a query may ask for.
pub const MAX_REDUNDANCY: u8 = 5;
/// Fewest agreeing nodes for a query to be paid.
pub const QUORUM: u8 = 2;
/// Least bonded stake of an eligible node runner (1 NES).
pub const MIN_STAKE: u128 = 1_000_000;
/// Blocks between `unbond` and the stake becoming claimable: longer than a query's commit and
/// reveal windows, so a node cannot leave before it can be slashed.
pub const UNBONDING_BLOCKS: u64 = 100;
/// Blocks a jailed node waits before it may `unjail`.
pub const JAIL_BLOCKS: u64 = 50;
/// Blocks during which nodes enter a query's draw: one to see the query, one to get the ticket
/// in, one to spare (and a proposer would have to hold all three to censor every ticket).
pub const DRAW_BLOCKS: u64 = crate::market::DEFAULT_DRAW_BLOCKS;

/// Name of the kernel a devnet node runner registers by default (`nesa-node register`).
pub const KERNEL_NAME: &str = "SmolLM2-135M-Instruct";
/// Price per input token of the default kernel, in `unes`.
pub const PRICE_PER_INPUT_TOKEN: u128 = 1;
/// Price per output token of the default kernel, in `unes`.
pub const PRICE_PER_OUTPUT_TOKEN: u128 = 2;
/// Fewest nodes per query the default kernel asks for.
pub const KERNEL_MIN_REDUNDANCY: u8 = 3;

// The default kernel asks for a redundancy the market allows (checked when compiling).
const _: () = assert!(QUORUM <= KERNEL_MIN_REDUNDANCY && KERNEL_MIN_REDUNDANCY <= MAX_REDUNDANCY);
const _: () = assert!(QUORUM <= DEFAULT_REDUNDANCY && DEFAULT_REDUNDANCY <= MAX_REDUNDANCY);

/// Devnet market parameters: the windows above, 3 nodes per query with a quorum of 2, slashes
/// of 5–30% (after Livepeer and Truebit), a 10% protocol fee and a 10% kernel royalty.
pub fn market_params() -> MarketParams {
    let percent = Decimal::percent;
    MarketParams {
        draw_blocks: DRAW_BLOCKS,
        commit_blocks: COMMIT_BLOCKS,
        reveal_blocks: REVEAL_BLOCKS,
        default_redundancy: DEFAULT_REDUNDANCY,
        max_redundancy: MAX_REDUNDANCY,
        quorum: QUORUM,
        slash: SlashFractions {
            no_commit: percent(20),
            no_reveal: percent(20),
            bad_reveal: percent(30),
            outlier: percent(5),
        },
        jail_on_fault: true,
        protocol_fee: percent(10),
        kernel_royalty: percent(10),
        fingerprint_tolerance: 3,
        fingerprint_positions: 16,
        max_input_tokens: 2048,
        max_output_tokens: 512,
        max_payload_bytes: 16_384,
        denom: DENOM.to_string(),
    }
}

/// The staking contract's instantiate message with the devnet's stake rules.
pub fn staking_instantiate(
    admin: Option<String>,
    registry: String,
    market: Option<String>,
    slash_recipient: String,
) -> staking::InstantiateMsg {
    staking::InstantiateMsg {
        admin,
        denom: DENOM.to_string(),
        min_stake: Uint128::new(MIN_STAKE),
        unbonding_blocks: UNBONDING_BLOCKS,
        jail_blocks: JAIL_BLOCKS,
        registry,
        market,
        slash_recipient,
    }
}

/// The market contract's instantiate message with the devnet's parameters.
pub fn market_instantiate(
    admin: Option<String>,
    registry: String,
    staking: String,
    treasury: String,
) -> market::InstantiateMsg {
    market::InstantiateMsg {
        admin,
        registry,
        staking,
        treasury,
        params: market_params(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_cannot_unbond_before_a_query_they_serve_can_slash_them() {
        let params = market_params();
        assert!(
            UNBONDING_BLOCKS > params.draw_blocks + params.commit_blocks + params.reveal_blocks
        );
    }
}
