//! The market as clients find it: the three contracts deployed at genesis and the ABCI query
//! path under which the chain reports them.

use serde::{Deserialize, Serialize};

use crate::ContractAddress;

/// ABCI query path of the genesis market contracts (JSON answer: [`MarketContracts`]).
pub const MARKET_CONTRACTS_PATH: &str = "/nesa.market.v1.Query/Contracts";

/// Where the market contracts deployed at genesis live.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarketContracts {
    /// The kernel registry.
    pub registry: ContractAddress,
    /// Node staking.
    pub staking: ContractAddress,
    /// The inference market.
    pub market: ContractAddress,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn market_contracts_serialize_as_bech32_strings_in_field_order() {
        let contracts = MarketContracts {
            registry: ContractAddress::from_bytes([1; 32]),
            staking: ContractAddress::from_bytes([2; 32]),
            market: ContractAddress::from_bytes([3; 32]),
        };
        let json = serde_json::to_string(&contracts).unwrap();
        let expected = format!(
            r#"{{"registry":"{}","staking":"{}","market":"{}"}}"#,
            contracts.registry, contracts.staking, contracts.market
        );
        assert_eq!(json, expected);
        assert_eq!(
            serde_json::from_str::<MarketContracts>(&json).unwrap(),
            contracts
        );
    }
}
