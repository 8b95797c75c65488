//! Writes the market's JSON schema to `schema/` (run from the crate directory).

use cosmwasm_schema::write_api;
use nesa_inference_market::msg::{ExecuteMsg, InstantiateMsg, MigrateMsg, QueryMsg};

fn main() {
    write_api! {
        instantiate: InstantiateMsg,
        execute: ExecuteMsg,
        query: QueryMsg,
        migrate: MigrateMsg,
    }
}
