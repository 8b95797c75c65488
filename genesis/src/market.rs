//! The market at genesis: the kernel registry, node staking and inference market codes stored
//! and instantiated wired to each other, with the devnet parameters of `nesa_market::devnet`,
//! so a fresh chain is a working market from its first block.

use base64::Engine;
use nesa_market::devnet;
use nesa_market::registry::InstantiateMsg as RegistryInstantiate;

use nesa_types::{ContractAddress, MarketContracts};

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
    let staking = json(serde_json::to_value(devnet::staking_instantiate(
        admin.map(str::to_string),
        addresses.registry.to_string(),
        Some(addresses.market.to_string()),
        treasury.to_string(),
    )))?;
    let market = json(serde_json::to_value(devnet::market_instantiate(
        admin.map(str::to_string),
        addresses.registry.to_string(),
        addresses.staking.to_string(),
        treasury.to_string(),
    )))?;
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

#[cfg(test)]
mod tests {
    use nesa_market::market::InstantiateMsg as MarketInstantiate;
    use nesa_market::staking::InstantiateMsg as StakingInstantiate;

    use super::*;

    fn address(byte: u8) -> String {
        nesa_types::AccountAddress::from_bytes([byte; 20]).to_string()
    }

    #[test]
    fn the_genesis_market_runs_the_devnet_parameters_under_its_admin() {
        let mut app_state = AppState::default();
        let wasm = MarketWasm {
            registry: vec![1],
            staking: vec![2],
            market: vec![3],
        };
        let (admin, treasury) = (address(1), address(2));
        let addresses = deploy(
            &mut app_state,
            &wasm,
            &admin,
            Some(&admin),
            &treasury,
            |code, _| ContractAddress::from_bytes([10 + code as u8; 32]),
        )
        .unwrap();
        let contracts = &app_state.wasm.contracts;
        assert!(contracts.iter().all(|c| c.admin.as_deref() == Some(&admin)));
        let staking: StakingInstantiate = serde_json::from_value(contracts[1].msg.clone()).unwrap();
        assert_eq!(
            staking,
            devnet::staking_instantiate(
                Some(admin.clone()),
                addresses.registry.to_string(),
                Some(addresses.market.to_string()),
                treasury.clone()
            )
        );
        let market: MarketInstantiate = serde_json::from_value(contracts[2].msg.clone()).unwrap();
        assert_eq!(market.params, devnet::market_params());
        assert_eq!(market.params.commit_blocks, devnet::COMMIT_BLOCKS);
        assert_eq!(market.admin, Some(admin));
    }
}
