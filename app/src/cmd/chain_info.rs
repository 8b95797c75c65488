//! `nesad chain-info`: the files wallets and registries add a chain from, generated from the
//! genesis file so they cannot drift from it: Keplr's `experimentalSuggestChain` chain info
//! and the cosmos chain-registry's `chain.json` and `assetlist.json`.

use std::path::Path;

use anyhow::Context;
use nesa_genesis::GenesisDoc;
use serde_json::{json, Value};

use crate::home::HomePaths;

/// Display unit of the fee and payment token.
const DISPLAY_DENOM: &str = "NES";
/// Decimals between `unes` and NES.
const DECIMALS: u32 = 6;
/// BIP-44 coin type of the chain's keys (the Cosmos Hub's, as the wallet derives them).
const COIN_TYPE: u32 = 118;

/// Where the chain's public endpoints are, as users' wallets reach them.
pub struct Endpoints {
    pub rpc: String,
    pub rest: String,
}

/// `nesad chain-info`: prints Keplr's chain info, or writes all three files into `out`.
pub fn chain_info(home: &Path, endpoints: &Endpoints, out: Option<&Path>) -> anyhow::Result<()> {
    let path = HomePaths::new(home).genesis();
    let genesis = GenesisDoc::load(&path)
        .with_context(|| format!("reading {} (run `nesad init` first)", path.display()))?;
    let files = ChainFiles::new(&genesis, endpoints)?;
    match out {
        None => println!("{}", serde_json::to_string_pretty(&files.keplr)?),
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            for (name, value) in [
                ("keplr-chain-info.json", &files.keplr),
                ("chain.json", &files.chain),
                ("assetlist.json", &files.assets),
            ] {
                let file = dir.join(name);
                std::fs::write(&file, serde_json::to_string_pretty(value)? + "\n")
                    .with_context(|| format!("writing {}", file.display()))?;
                println!("wrote {}", file.display());
            }
        }
    }
    Ok(())
}

/// The three descriptions of one chain.
pub struct ChainFiles {
    /// Keplr's `ChainInfo` for `window.keplr.experimentalSuggestChain`.
    pub keplr: Value,
    /// chain-registry `chain.json`.
    pub chain: Value,
    /// chain-registry `assetlist.json`.
    pub assets: Value,
}

impl ChainFiles {
    pub fn new(genesis: &GenesisDoc, endpoints: &Endpoints) -> anyhow::Result<Self> {
        let params = &genesis.app_state.params;
        let denom = params.fee_denom.as_str();
        let gas_price: f64 = params.min_gas_price.parse().with_context(|| {
            format!(
                "the genesis minimum gas price {:?} is not a number",
                params.min_gas_price
            )
        })?;
        let (average, high) = (gas_price, gas_price * 2.0);
        let prefix = nesa_types::ACCOUNT_PREFIX;
        let chain_id = genesis.chain_id.as_str();
        let currency = json!({
            "coinDenom": DISPLAY_DENOM,
            "coinMinimalDenom": denom,
            "coinDecimals": DECIMALS,
        });
        let mut fee_currency = currency.clone();
        fee_currency["gasPriceStep"] =
            json!({ "low": gas_price, "average": average, "high": high });
        let keplr = json!({
            "chainId": chain_id,
            "chainName": format!("Nesa ({chain_id})"),
            "rpc": endpoints.rpc,
            "rest": endpoints.rest,
            "bip44": { "coinType": COIN_TYPE },
            "bech32Config": {
                "bech32PrefixAccAddr": prefix,
                "bech32PrefixAccPub": format!("{prefix}pub"),
                "bech32PrefixValAddr": format!("{prefix}valoper"),
                "bech32PrefixValPub": format!("{prefix}valoperpub"),
                "bech32PrefixConsAddr": format!("{prefix}valcons"),
                "bech32PrefixConsPub": format!("{prefix}valconspub"),
            },
            "currencies": [currency],
            "feeCurrencies": [fee_currency],
            "stakeCurrency": currency,
            "features": ["cosmwasm"],
        });
        let chain = json!({
            "$schema": "../chain.schema.json",
            "chain_name": "nesa",
            "chain_type": "cosmos",
            "status": "live",
            "network_type": if chain_id.contains("devnet") { "devnet" } else { "testnet" },
            "pretty_name": "Nesa",
            "chain_id": chain_id,
            "bech32_prefix": prefix,
            "daemon_name": "nesad",
            "node_home": "$HOME/.nesad",
            "slip44": COIN_TYPE,
            "fees": {
                "fee_tokens": [{
                    "denom": denom,
                    "fixed_min_gas_price": gas_price,
                    "low_gas_price": gas_price,
                    "average_gas_price": average,
                    "high_gas_price": high,
                }],
            },
            "staking": { "staking_tokens": [{ "denom": denom }] },
            "codebase": {
                "recommended_version": env!("CARGO_PKG_VERSION"),
                "cosmwasm_enabled": true,
                "consensus": { "type": "cometbft", "version": "0.38" },
                "genesis": { "name": "genesis.json" },
            },
            "apis": {
                "rpc": [{ "address": endpoints.rpc }],
                "rest": [{ "address": endpoints.rest }],
            },
        });
        let assets = json!({
            "$schema": "../assetlist.schema.json",
            "chain_name": "nesa",
            "assets": [{
                "description": "The token that pays for inference and stakes node runners on Nesa.",
                "denom_units": [
                    { "denom": denom, "exponent": 0 },
                    { "denom": DISPLAY_DENOM.to_lowercase(), "exponent": DECIMALS },
                ],
                "base": denom,
                "name": "Nesa",
                "display": DISPLAY_DENOM.to_lowercase(),
                "symbol": DISPLAY_DENOM,
                "type_asset": "sdk.coin",
            }],
        });
        Ok(ChainFiles {
            keplr,
            chain,
            assets,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_follows_the_genesis() {
        let mut genesis = GenesisDoc::new("nesa-devnet-1", "2026-01-01T00:00:00Z".into()).unwrap();
        genesis.app_state.params.min_gas_price = "0.04".into();
        let endpoints = Endpoints {
            rpc: "http://127.0.0.1:26657".into(),
            rest: "http://127.0.0.1:1317".into(),
        };
        let files = ChainFiles::new(&genesis, &endpoints).unwrap();
        let keplr = &files.keplr;
        assert_eq!(keplr["chainId"], "nesa-devnet-1");
        assert_eq!(keplr["rest"], "http://127.0.0.1:1317");
        assert_eq!(keplr["bip44"]["coinType"], 118);
        assert_eq!(keplr["bech32Config"]["bech32PrefixAccAddr"], "nesa");
        assert_eq!(keplr["bech32Config"]["bech32PrefixConsAddr"], "nesavalcons");
        assert_eq!(keplr["feeCurrencies"][0]["coinMinimalDenom"], "unes");
        assert_eq!(keplr["feeCurrencies"][0]["gasPriceStep"]["low"], 0.04);
        assert_eq!(keplr["stakeCurrency"]["coinDecimals"], 6);
        assert_eq!(files.chain["chain_id"], "nesa-devnet-1");
        assert_eq!(files.chain["network_type"], "devnet");
        assert_eq!(
            files.chain["fees"]["fee_tokens"][0]["fixed_min_gas_price"],
            0.04
        );
        assert_eq!(files.assets["assets"][0]["base"], "unes");
        assert_eq!(files.assets["assets"][0]["denom_units"][1]["exponent"], 6);
    }

    #[test]
    fn a_gas_price_that_is_not_a_number_is_a_clear_error() {
        let mut genesis = GenesisDoc::new("nesa-1", "2026-01-01T00:00:00Z".into()).unwrap();
        genesis.app_state.params.min_gas_price = "cheap".into();
        let endpoints = Endpoints {
            rpc: String::new(),
            rest: String::new(),
        };
        let error = ChainFiles::new(&genesis, &endpoints).err().unwrap();
        assert!(error.to_string().contains("cheap"), "{error}");
    }
}
