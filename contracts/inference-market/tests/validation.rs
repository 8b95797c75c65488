//! Bad submissions and bad parameters are rejected with a clear error before anything moves:
//! the user's balance, the market's balance and the query count stay as they were.

mod support;

use cosmwasm_std::{coins, Binary, Decimal, Uint128};
use cw_multi_test::Executor;
use nesa_inference_market::msg::{
    ConfigResponse, ExecuteMsg, InstantiateMsg, MarketParams, QueryMsg, Sampling,
};
use nesa_inference_market::ContractError;
use nesa_market::registry::{self, Unrunnable};
use nesa_market::tokens::TokenIdsError;

use support::*;

const INPUT: [u32; 4] = [1, 2, 3, 4];
const ENOUGH: u128 = 1_000_000;

/// Submits `msg` with `funds` and checks the error and that nothing changed.
fn rejected(market: &mut Market, msg: &ExecuteMsg, funds: u128, expected: ContractError) {
    let user = market.user();
    let (user_before, market_before) = (market.balance(&user), market.balance(&market.market));
    let err = market.execute(&user, msg, funds).unwrap_err();
    assert_eq!(err, expected);
    assert_eq!(market.balance(&user), user_before);
    assert_eq!(market.balance(&market.market), market_before);
    let config: ConfigResponse = market
        .app
        .wrap()
        .query_wasm_smart(&market.market, &QueryMsg::Config {})
        .unwrap();
    assert_eq!(config.query_count, 0);
}

fn submit(input: Vec<u8>, max_output_tokens: u32, redundancy: Option<u8>) -> ExecuteMsg {
    ExecuteMsg::SubmitQuery {
        kernel_id: 1,
        input: Binary::from(input),
        max_output_tokens,
        sampling: Sampling {
            seed: 1,
            temperature_milli: 700,
            top_p_milli: 950,
        },
        redundancy,
        user_entropy: Binary::from(vec![3; 32]),
    }
}

fn ids(tokens: u32) -> Vec<u8> {
    nesa_market::encode_token_ids(&(0..tokens).collect::<Vec<_>>())
}

#[test]
fn an_escrow_below_the_price_is_rejected() {
    let mut market = Market::new();
    let required = Market::required_escrow(4, 16, 3);
    rejected(
        &mut market,
        &Market::submit_msg(&INPUT, 16, Some(3)),
        required - 1,
        ContractError::InsufficientEscrow {
            sent: Uint128::new(required - 1),
            required: Uint128::new(required),
        },
    );
}

#[test]
fn an_escrow_in_another_denom_or_none_is_rejected() {
    let mut market = Market::new();
    let user = market.user();
    market.app.init_modules(|router, _, storage| {
        router
            .bank
            .init_balance(
                storage,
                &user,
                vec![
                    cosmwasm_std::coin(ENOUGH, "uatom"),
                    cosmwasm_std::coin(USER_FUNDS, DENOM),
                ],
            )
            .unwrap()
    });
    let err = market
        .app
        .execute_contract(
            user.clone(),
            market.market.clone(),
            &Market::submit_msg(&INPUT, 16, Some(3)),
            &coins(ENOUGH, "uatom"),
        )
        .unwrap_err();
    assert!(
        matches!(
            err.downcast::<ContractError>().unwrap(),
            ContractError::Payment(_)
        ),
        "a foreign denom is refused by the market itself"
    );
    assert_eq!(
        market
            .app
            .wrap()
            .query_balance(&user, "uatom")
            .unwrap()
            .amount
            .u128(),
        ENOUGH
    );
    rejected(
        &mut market,
        &Market::submit_msg(&INPUT, 16, Some(3)),
        0,
        ContractError::InsufficientEscrow {
            sent: Uint128::zero(),
            required: Uint128::new(Market::required_escrow(4, 16, 3)),
        },
    );
}

#[test]
fn an_empty_input_is_rejected() {
    let mut market = Market::new();
    rejected(
        &mut market,
        &submit(vec![], 16, None),
        ENOUGH,
        ContractError::EmptyInput {},
    );
}

#[test]
fn an_input_that_is_not_whole_token_ids_is_rejected() {
    let mut market = Market::new();
    rejected(
        &mut market,
        &submit(vec![1, 2, 3, 4, 5], 16, None),
        ENOUGH,
        ContractError::Payload {
            what: "input",
            source: TokenIdsError::Misaligned { len: 5 },
        },
    );
}

#[test]
fn an_oversized_payload_is_rejected() {
    let mut market = Market::new();
    // max_payload_bytes is 1024: 257 tokens are 1028 bytes.
    rejected(
        &mut market,
        &submit(ids(257), 16, None),
        ENOUGH * 100,
        ContractError::PayloadTooLarge {
            what: "input",
            bytes: 1028,
            max: 1024,
        },
    );
}

#[test]
fn too_many_input_tokens_are_rejected() {
    let mut params = devnet_params();
    params.max_input_tokens = 100;
    let mut market = Market::with(5, params);
    rejected(
        &mut market,
        &submit(ids(101), 16, None),
        ENOUGH,
        ContractError::TooManyInputTokens {
            tokens: 101,
            max: 100,
        },
    );
}

#[test]
fn a_token_id_outside_the_kernels_vocabulary_is_rejected() {
    let mut market = Market::new();
    let input = [5, VOCAB_SIZE - 1, VOCAB_SIZE, 7];
    rejected(
        &mut market,
        &submit(nesa_market::encode_token_ids(&input), 16, None),
        ENOUGH,
        ContractError::Unrunnable {
            kernel_id: 1,
            reason: Unrunnable::TokenOutOfVocabulary {
                index: 2,
                token: VOCAB_SIZE,
                vocab_size: VOCAB_SIZE,
            },
        },
    );
    rejected(
        &mut market,
        &submit(nesa_market::encode_token_ids(&[u32::MAX]), 16, None),
        ENOUGH,
        ContractError::Unrunnable {
            kernel_id: 1,
            reason: Unrunnable::TokenOutOfVocabulary {
                index: 0,
                token: u32::MAX,
                vocab_size: VOCAB_SIZE,
            },
        },
    );
    // The last id of the vocabulary is fine.
    let user = market.user();
    market
        .execute(
            &user,
            &submit(nesa_market::encode_token_ids(&[VOCAB_SIZE - 1]), 16, None),
            ENOUGH,
        )
        .unwrap();
}

#[test]
fn an_input_and_output_longer_than_the_kernels_context_is_rejected() {
    let mut market = Market::new();
    // A version of the kernel with a 64-token context.
    assert_eq!(market.fork_with_context(64), 2);
    let on_kernel_2 = |tokens: u32, max_output_tokens: u32| {
        let mut msg = submit(ids(tokens), max_output_tokens, None);
        if let ExecuteMsg::SubmitQuery { kernel_id, .. } = &mut msg {
            *kernel_id = 2;
        }
        msg
    };
    rejected(
        &mut market,
        &on_kernel_2(40, 25),
        ENOUGH,
        ContractError::Unrunnable {
            kernel_id: 2,
            reason: Unrunnable::ContextExceeded {
                input_tokens: 40,
                max_output_tokens: 25,
                context_length: 64,
            },
        },
    );
    // Exactly the context passes this check (and then finds no node serving kernel 2).
    rejected(
        &mut market,
        &on_kernel_2(40, 24),
        ENOUGH,
        ContractError::NotEnoughCandidates {
            kernel_id: 2,
            available: 0,
            required: 3,
        },
    );
}

#[test]
fn an_output_limit_out_of_range_is_rejected() {
    let mut market = Market::new();
    for requested in [0, 65] {
        rejected(
            &mut market,
            &submit(ids(4), requested, None),
            ENOUGH,
            ContractError::InvalidOutputLimit { requested, max: 64 },
        );
    }
}

#[test]
fn an_unknown_kernel_is_rejected() {
    let mut market = Market::new();
    let mut msg = Market::submit_msg(&INPUT, 16, None);
    if let ExecuteMsg::SubmitQuery { kernel_id, .. } = &mut msg {
        *kernel_id = 7;
    }
    let user = market.user();
    let err = market.execute(&user, &msg, ENOUGH).unwrap_err();
    assert!(
        matches!(&err, ContractError::KernelNotFound { kernel_id: 7, reason } if reason.contains("kernel 7 not found")),
        "{err}"
    );
    assert_eq!(market.balance(&market.market), 0);
}

#[test]
fn a_deprecated_kernel_is_rejected() {
    let mut market = Market::new();
    let owner = market.kernel_owner.clone();
    market
        .app
        .execute_contract(
            owner,
            market.registry.clone(),
            &registry::ExecuteMsg::Deprecate { kernel_id: 1 },
            &[],
        )
        .unwrap();
    rejected(
        &mut market,
        &Market::submit_msg(&INPUT, 16, None),
        ENOUGH,
        ContractError::KernelDeprecated { kernel_id: 1 },
    );
}

#[test]
fn a_redundancy_below_the_kernels_minimum_or_above_the_maximum_is_rejected() {
    let mut market = Market::new();
    // The kernel's min_redundancy is 2 (= quorum); the market allows at most 5.
    for requested in [1, 6] {
        rejected(
            &mut market,
            &Market::submit_msg(&INPUT, 16, Some(requested)),
            ENOUGH,
            ContractError::InvalidRedundancy {
                requested,
                min: 2,
                min_market: 2,
                max: 5,
            },
        );
    }
}

#[test]
fn more_nodes_than_are_eligible_is_rejected() {
    let mut market = Market::with(2, devnet_params());
    rejected(
        &mut market,
        &Market::submit_msg(&INPUT, 16, Some(3)),
        ENOUGH,
        ContractError::NotEnoughCandidates {
            kernel_id: 1,
            available: 2,
            required: 3,
        },
    );
}

#[test]
fn bad_entropy_or_sampling_is_rejected() {
    let mut market = Market::new();
    let mut msg = Market::submit_msg(&INPUT, 16, None);
    if let ExecuteMsg::SubmitQuery { user_entropy, .. } = &mut msg {
        *user_entropy = Binary::from(vec![1; 31]);
    }
    rejected(
        &mut market,
        &msg,
        ENOUGH,
        ContractError::InvalidUserEntropy { len: 31 },
    );
    for (temperature_milli, top_p_milli) in [(10_001, 1000), (0, 0), (0, 1001)] {
        let mut msg = Market::submit_msg(&INPUT, 16, None);
        if let ExecuteMsg::SubmitQuery { sampling, .. } = &mut msg {
            *sampling = Sampling {
                seed: 0,
                temperature_milli,
                top_p_milli,
            };
        }
        rejected(&mut market, &msg, ENOUGH, ContractError::InvalidSampling {});
    }
}

#[test]
fn commit_reveal_and_settle_take_no_funds() {
    let mut market = Market::new();
    let user = market.user();
    let id = market.submit(&user, &INPUT, 16, Some(3), ENOUGH).unwrap();
    let err = market
        .execute(&user, &ExecuteMsg::Settle { query_id: id }, 5)
        .unwrap_err();
    assert!(matches!(err, ContractError::Payment(_)), "{err}");
}

#[test]
fn instantiating_with_bad_params_fails() {
    let mut market = Market::new();
    let code_id = market.app.contract_data(&market.market).unwrap().code_id;
    let admin = market.addr("admin");
    let mut params = devnet_params();
    params.quorum = 4;
    let err = market
        .app
        .instantiate_contract(
            code_id,
            admin,
            &InstantiateMsg {
                admin: None,
                registry: market.registry.to_string(),
                staking: market.staking.to_string(),
                treasury: market.treasury.to_string(),
                params,
            },
            &[],
            "bad market",
            None,
        )
        .unwrap_err();
    assert!(matches!(
        err.downcast::<ContractError>().unwrap(),
        ContractError::InvalidParams { reason } if reason.contains("quorum")
    ));
}

#[test]
fn only_the_admin_updates_params_and_only_to_valid_ones() {
    let mut market = Market::new();
    let admin = market.addr("admin");
    let user = market.user();
    let mut params = devnet_params();
    params.commit_blocks = 20;
    assert_eq!(
        market
            .execute(
                &user,
                &ExecuteMsg::UpdateParams {
                    params: params.clone()
                },
                0
            )
            .unwrap_err(),
        ContractError::NotAdmin {
            admin: admin.clone()
        }
    );
    let mut bad = params.clone();
    bad.protocol_fee = Decimal::percent(96);
    assert!(matches!(
        market
            .execute(&admin, &ExecuteMsg::UpdateParams { params: bad }, 0)
            .unwrap_err(),
        ContractError::InvalidParams { .. }
    ));
    market
        .execute(
            &admin,
            &ExecuteMsg::UpdateParams {
                params: params.clone(),
            },
            0,
        )
        .unwrap();
    let stored: MarketParams = market
        .app
        .wrap()
        .query_wasm_smart(&market.market, &QueryMsg::Params {})
        .unwrap();
    assert_eq!(stored, params);

    let new_admin = market.addr("council");
    market
        .execute(
            &admin,
            &ExecuteMsg::UpdateAdmin {
                admin: new_admin.to_string(),
            },
            0,
        )
        .unwrap();
    assert_eq!(
        market
            .execute(&admin, &ExecuteMsg::UpdateParams { params }, 0)
            .unwrap_err(),
        ContractError::NotAdmin { admin: new_admin }
    );
}
