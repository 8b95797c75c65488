//! ABCI queries: the gRPC-style paths CosmJS and Keplr call (protobuf in, protobuf out), and
//! `store/<module>/key` raw reads with ICS-23 proofs.

pub use crate::modules::QueryError;

use crate::modules::{auth, bank};
use crate::state::StateRead;

/// A protobuf query handler over a state view.
type Handler<S> = fn(&S, &[u8]) -> Result<Vec<u8>, QueryError>;

/// Routes a gRPC-style query path to its module; `None` if no module serves it.
pub fn route<S: StateRead>(path: &str) -> Option<Handler<S>> {
    Some(match path {
        "/cosmos.auth.v1beta1.Query/Account" => auth::query::account_query::<S>,
        "/cosmos.bank.v1beta1.Query/Balance" => bank::query::balance_query::<S>,
        "/cosmos.bank.v1beta1.Query/AllBalances" => bank::query::all_balances_query::<S>,
        "/cosmos.bank.v1beta1.Query/SupplyOf" => bank::query::supply_of_query::<S>,
        "/cosmos.bank.v1beta1.Query/TotalSupply" => bank::query::total_supply_query::<S>,
        _ => return None,
    })
}

/// The raw-store prefix of a module for `store/<module>/key` queries.
pub fn module_prefix(module: &str) -> Option<&'static [u8]> {
    match module {
        "auth" => Some(auth::keys::PREFIX),
        "bank" => Some(bank::keys::PREFIX),
        _ => None,
    }
}
