//! Writes the staking contract's JSON schema to `schema/` (run from the crate directory).

use cosmwasm_schema::write_api;
use nesa_node_staking::msg::{ExecuteMsg, InstantiateMsg, MigrateMsg, QueryMsg};

fn main() {
    write_api! {
        instantiate: InstantiateMsg,
        execute: ExecuteMsg,
        query: QueryMsg,
        migrate: MigrateMsg,
    }
}
