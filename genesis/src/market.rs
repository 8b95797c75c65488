//! The market at genesis: the kernel registry, node staking and inference market codes stored
//! and instantiated wired to each other, with devnet parameters, so a fresh chain is a working
//! market from its first block.

use base64::Engine;
use cosmwasm_std::{Decimal, Uint128};
use nesa_market::market::{InstantiateMsg as MarketInstantiate, MarketParams, SlashFractions};
use nesa_market::registry::InstantiateMsg as RegistryInstantiate;
use nesa_market::staking::InstantiateMsg as StakingInstantiate;

use nesa_types::{ContractAddress, MarketContracts, BASE_DENOM as DENOM};

use crate::{AppState, GenesisCode, GenesisContract, GenesisError};

/// File names of the market contracts in an artifacts directory (`scripts/build-contracts`).
pub const REGISTRY_WASM: &str = "nesa_kernel_registry.wasm";
pub const STAKING_WASM: &str = "nesa_node_staking.wasm";
pub const MARKET_WASM: &str = "nesa_inference_market.wasm";

/// The three market codes.
pub struct MarketWasm {
    pub registry: Vec<u8>,
    pub staking: Vec<u8>,
    pub market: Vec<u8>,
}

impl MarketWasm {
    /// Reads the three codes from `dir`; `None` if any is missing.
    pub fn from_dir(dir: &std::path::Path) -> Option<MarketWasm> {
        let read = |name: &str| std::fs::read(dir.join(name)).ok();
        Some(MarketWasm {
            registry: read(REGISTRY_WASM)?,
            staking: read(STAKING_WASM)?,
            market: read(MARKET_WASM)?,
        })
    }
}

/// Devnet market parameters: a 15-block commit window (room to generate on a loaded machine; a
/// query settles as soon as every node revealed, so the window only delays faulty rounds) and a
/// 10-block reveal window, 3 nodes per query with a
/// quorum of 2, slashes of 5–30% (ANCHORS: Livepeer/Truebit-style), 10% protocol fee and 10%
/// kernel royalty.
pub fn devnet_params() -> MarketParams {
    let percent = |p: u64| Decimal::percent(p);
    MarketParams {
        commit_blocks: 15,
        reveal_blocks: 10,
        default_redundancy: 3,
        max_redundancy: 5,
        quorum: 2,
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
        max_payload_bytes: 16384,
        denom: DENOM.to_string(),
    }
}

/// Minimum stake of a node runner on a devnet (1 NES).
pub const DEVNET_MIN_STAKE: u128 = 1_000_000;

/// Adds the market codes and contracts to `app_state`. `address_of(code_id, instance)` must
/// return the classic contract address the chain will derive, so the contracts can be wired
/// to each other before they exist.
pub fn deploy(
    app_state: &mut AppState,
    wasm: &MarketWasm,
    creator: &str,
    admin: Option<&str>,
    treasury: &str,
    address_of: impl Fn(u64, u64) -> ContractAddress,
) -> Result<MarketContracts, GenesisError> {
    let first_code = app_state.wasm.codes.len() as u64 + 1;
    let first_instance = app_state.wasm.contracts.len() as u64 + 1;
    let addresses = MarketContracts {
        registry: address_of(first_code, first_instance),
        staking: address_of(first_code + 1, first_instance + 1),
        market: address_of(first_code + 2, first_instance + 2),
    };
    for code in [&wasm.registry, &wasm.staking, &wasm.market] {
        app_state.wasm.codes.push(GenesisCode {
            wasm_byte_code: base64::engine::general_purpose::STANDARD.encode(code),
            creator: creator.to_string(),
            pinned: true,
        });
    }
    let json = |value: serde_json::Result<serde_json::Value>| {
        value.map_err(|e| GenesisError::InvalidParams(e.to_string()))
    };
    let registry = json(serde_json::to_value(RegistryInstantiate {}))?;
    let staking = json(serde_json::to_value(StakingInstantiate {
        admin: admin.map(str::to_string),
        denom: DENOM.to_string(),
        min_stake: Uint128::new(DEVNET_MIN_STAKE),
        unbonding_blocks: 100,
        jail_blocks: 50,
        registry: addresses.registry.to_string(),
        market: Some(addresses.market.to_string()),
        slash_recipient: treasury.to_string(),
    }))?;
    let market = json(serde_json::to_value(MarketInstantiate {
        admin: admin.map(str::to_string),
        registry: addresses.registry.to_string(),
        staking: addresses.staking.to_string(),
        treasury: treasury.to_string(),
        params: devnet_params(),
    }))?;
    let contract = |offset: u64, label: &str, msg: serde_json::Value| GenesisContract {
        code_id: first_code + offset,
        label: label.to_string(),
        msg,
        creator: creator.to_string(),
        admin: admin.map(str::to_string),
    };
    app_state
        .wasm
        .contracts
        .push(contract(0, "nesa-kernel-registry", registry));
    app_state
        .wasm
        .contracts
        .push(contract(1, "nesa-node-staking", staking));
    app_state
        .wasm
        .contracts
        .push(contract(2, "nesa-inference-market", market));
    app_state.market = Some(addresses.clone());
    app_state.validate()?;
    Ok(addresses)
}
