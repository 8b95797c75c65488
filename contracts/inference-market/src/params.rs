//! Validation of the market's parameters (at instantiate and on every update).

use cosmwasm_std::Decimal;
use nesa_market::fingerprint::{MAX_FINGERPRINTED_TOKENS, MAX_FINGERPRINT_ENTRIES};
use nesa_market::market::{MarketParams, MAX_INPUT_TOKENS, MAX_PAYLOAD_BYTES, MAX_WINDOW_BLOCKS};
use nesa_market::registry::MAX_REDUNDANCY;
use nesa_market::tokens::TOKEN_ID_BYTES;

use crate::error::ContractError;

/// Checks every invariant the market relies on; the error names the offending field.
pub fn validate_params(params: &MarketParams) -> Result<(), ContractError> {
    let invalid = |reason: String| Err(ContractError::InvalidParams { reason });
    for (name, blocks) in [
        ("draw_blocks", params.draw_blocks),
        ("commit_blocks", params.commit_blocks),
        ("reveal_blocks", params.reveal_blocks),
    ] {
        if blocks == 0 || blocks > MAX_WINDOW_BLOCKS {
            return invalid(format!(
                "{name} ({blocks}) must be 1 to {MAX_WINDOW_BLOCKS}"
            ));
        }
    }
    if params.default_redundancy == 0
        || params.default_redundancy > params.max_redundancy
        || params.max_redundancy > MAX_REDUNDANCY
    {
        return invalid(format!(
            "need 1 <= default_redundancy ({}) <= max_redundancy ({}) <= {MAX_REDUNDANCY}",
            params.default_redundancy, params.max_redundancy
        ));
    }
    if params.quorum == 0 || params.quorum > params.default_redundancy {
        return invalid(format!(
            "need 1 <= quorum ({}) <= default_redundancy ({})",
            params.quorum, params.default_redundancy
        ));
    }
    let slash = &params.slash;
    for (name, fraction) in [
        ("no_commit", slash.no_commit),
        ("no_reveal", slash.no_reveal),
        ("bad_reveal", slash.bad_reveal),
        ("outlier", slash.outlier),
    ] {
        if fraction > Decimal::one() {
            return invalid(format!("slash.{name} ({fraction}) must be at most 1"));
        }
    }
    let fees = params.protocol_fee.checked_add(params.kernel_royalty);
    if !matches!(fees, Ok(sum) if sum < Decimal::one()) {
        return invalid(format!(
            "protocol_fee ({}) + kernel_royalty ({}) must be below 1 so nodes keep a share",
            params.protocol_fee, params.kernel_royalty
        ));
    }
    if params.fingerprint_positions == 0
        || params.fingerprint_positions as usize > MAX_FINGERPRINT_ENTRIES
    {
        return invalid(format!(
            "fingerprint_positions ({}) must be 1 to {MAX_FINGERPRINT_ENTRIES} (a fingerprint fits in 256 bytes)",
            params.fingerprint_positions
        ));
    }
    if params.max_input_tokens == 0 || params.max_input_tokens > MAX_INPUT_TOKENS {
        return invalid(format!(
            "max_input_tokens ({}) must be 1 to {MAX_INPUT_TOKENS}",
            params.max_input_tokens
        ));
    }
    if params.max_output_tokens == 0 || params.max_output_tokens > MAX_FINGERPRINTED_TOKENS {
        return invalid(format!(
            "max_output_tokens ({}) must be 1 to {MAX_FINGERPRINTED_TOKENS}",
            params.max_output_tokens
        ));
    }
    if params.max_payload_bytes > MAX_PAYLOAD_BYTES {
        return invalid(format!(
            "max_payload_bytes ({}) must be at most {MAX_PAYLOAD_BYTES}",
            params.max_payload_bytes
        ));
    }
    if u64::from(params.max_payload_bytes)
        < u64::from(params.max_output_tokens) * TOKEN_ID_BYTES as u64
    {
        return invalid(format!(
            "max_payload_bytes ({}) must hold max_output_tokens ({}) token ids of {TOKEN_ID_BYTES} bytes, or full outputs could not be revealed",
            params.max_payload_bytes, params.max_output_tokens
        ));
    }
    let denom_ok = params.denom.len() >= 2
        && params
            .denom
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/:._-".contains(c));
    if !denom_ok {
        return invalid(format!(
            "denom {:?} is not a bank denomination",
            params.denom
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use nesa_market::devnet;

    use super::*;

    fn rejected(change: impl FnOnce(&mut MarketParams), expected: &str) {
        let mut params = devnet::market_params();
        change(&mut params);
        match validate_params(&params) {
            Err(ContractError::InvalidParams { reason }) => {
                assert!(reason.contains(expected), "{reason:?} lacks {expected:?}")
            }
            other => panic!("expected invalid params ({expected}), got {other:?}"),
        }
    }

    #[test]
    fn the_devnet_defaults_are_valid() {
        validate_params(&devnet::market_params()).unwrap();
    }

    #[test]
    fn the_largest_windows_and_limits_are_valid() {
        let mut params = devnet::market_params();
        params.draw_blocks = MAX_WINDOW_BLOCKS;
        params.commit_blocks = MAX_WINDOW_BLOCKS;
        params.reveal_blocks = MAX_WINDOW_BLOCKS;
        params.max_input_tokens = MAX_INPUT_TOKENS;
        params.max_payload_bytes = MAX_PAYLOAD_BYTES;
        validate_params(&params).unwrap();
    }

    #[test]
    fn every_bad_parameter_is_rejected_by_name() {
        rejected(|p| p.draw_blocks = 0, "draw_blocks");
        rejected(|p| p.draw_blocks = MAX_WINDOW_BLOCKS + 1, "draw_blocks");
        rejected(|p| p.commit_blocks = 0, "commit_blocks");
        rejected(|p| p.reveal_blocks = 0, "reveal_blocks");
        rejected(|p| p.commit_blocks = u64::MAX, "commit_blocks");
        rejected(|p| p.reveal_blocks = MAX_WINDOW_BLOCKS + 1, "reveal_blocks");
        rejected(|p| p.max_input_tokens = u32::MAX, "max_input_tokens");
        rejected(|p| p.max_payload_bytes = u32::MAX, "max_payload_bytes");
        rejected(|p| p.default_redundancy = 0, "default_redundancy");
        rejected(|p| p.default_redundancy = 6, "default_redundancy");
        rejected(|p| p.max_redundancy = 11, "max_redundancy");
        rejected(|p| p.quorum = 0, "quorum");
        rejected(|p| p.quorum = 4, "quorum");
        rejected(|p| p.slash.outlier = Decimal::percent(101), "slash.outlier");
        rejected(
            |p| p.slash.no_commit = Decimal::percent(150),
            "slash.no_commit",
        );
        rejected(
            |p| {
                p.protocol_fee = Decimal::percent(60);
                p.kernel_royalty = Decimal::percent(40)
            },
            "protocol_fee",
        );
        rejected(|p| p.fingerprint_positions = 0, "fingerprint_positions");
        rejected(|p| p.fingerprint_positions = 19, "fingerprint_positions");
        rejected(|p| p.max_input_tokens = 0, "max_input_tokens");
        rejected(|p| p.max_output_tokens = 0, "max_output_tokens");
        rejected(|p| p.max_output_tokens = 70_000, "max_output_tokens");
        rejected(|p| p.max_payload_bytes = 2047, "max_payload_bytes");
        rejected(|p| p.denom = String::new(), "denom");
        rejected(|p| p.denom = "u nes".into(), "denom");
    }
}
