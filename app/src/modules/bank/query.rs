//! `/cosmos.bank.v1beta1.Query/*` handlers.

use cosmrs::proto::cosmos::bank::v1beta1::{
    QueryAllBalancesRequest, QueryAllBalancesResponse, QueryBalanceRequest, QueryBalanceResponse,
    QuerySupplyOfRequest, QuerySupplyOfResponse, QueryTotalSupplyResponse,
};
use cosmrs::proto::cosmos::base::query::v1beta1::PageResponse;
use prost::Message;

use super::{balance, balances, coin_to_proto, supply, total_supply};
use crate::modules::QueryError;
use crate::state::StateRead;
use nesa_types::{Address, Coin};

/// `Query/Balance`: one denomination of one account (zero if none).
pub fn balance_query<S: StateRead>(state: &S, request: &[u8]) -> Result<Vec<u8>, QueryError> {
    let request = QueryBalanceRequest::decode(request)?;
    let address: Address = request.address.parse()?;
    if request.denom.is_empty() {
        return Err(QueryError::InvalidRequest("denom must not be empty".into()));
    }
    let amount = balance(state, &address, &request.denom)?;
    let coin = Coin {
        denom: request.denom,
        amount,
    };
    Ok(QueryBalanceResponse {
        balance: Some(coin_to_proto(&coin)),
    }
    .encode_to_vec())
}

/// `Query/AllBalances`: every balance of one account.
pub fn all_balances_query<S: StateRead>(state: &S, request: &[u8]) -> Result<Vec<u8>, QueryError> {
    let request = QueryAllBalancesRequest::decode(request)?;
    let address: Address = request.address.parse()?;
    let coins = balances(state, &address)?;
    let total = coins.len() as u64;
    Ok(QueryAllBalancesResponse {
        balances: coins.iter().map(coin_to_proto).collect(),
        pagination: Some(PageResponse {
            next_key: vec![],
            total,
        }),
    }
    .encode_to_vec())
}

/// `Query/SupplyOf`: the total supply of one denomination.
pub fn supply_of_query<S: StateRead>(state: &S, request: &[u8]) -> Result<Vec<u8>, QueryError> {
    let request = QuerySupplyOfRequest::decode(request)?;
    let amount = supply(state, &request.denom)?;
    Ok(QuerySupplyOfResponse {
        amount: Some(coin_to_proto(&Coin {
            denom: request.denom,
            amount,
        })),
    }
    .encode_to_vec())
}

/// `Query/TotalSupply`: the supply of every denomination.
pub fn total_supply_query<S: StateRead>(state: &S, _request: &[u8]) -> Result<Vec<u8>, QueryError> {
    let coins = total_supply(state)?;
    let total = coins.len() as u64;
    Ok(QueryTotalSupplyResponse {
        supply: coins.iter().map(coin_to_proto).collect(),
        pagination: Some(PageResponse {
            next_key: vec![],
            total,
        }),
    }
    .encode_to_vec())
}
