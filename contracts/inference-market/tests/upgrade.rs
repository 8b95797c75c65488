//! Upgrading the three contracts while a query is open: each is migrated by its admin to a
//! newly stored code of itself, keeps its state, and the query is served on the new codes.

mod support;

use cw_multi_test::Executor;
use nesa_inference_market::msg::{MigrateMsg, QueryStatus};

use support::Behaviour::Honest;
use support::*;

/// The cw2 `{contract, version}` a contract records, read raw from its storage.
fn contract_version(market: &Market, contract: &cosmwasm_std::Addr) -> serde_json::Value {
    let raw = market
        .app
        .wrap()
        .query_wasm_raw(contract.clone(), b"contract_info".as_slice())
        .unwrap()
        .expect("a cw2 version is recorded at instantiate");
    serde_json::from_slice(&raw).unwrap()
}

#[test]
fn a_query_submitted_before_an_upgrade_settles_after_it() {
    let mut market = Market::new();
    let user = market.user();
    let id = market
        .submit(&user, &[1, 4093, 198], 16, Some(3), 400)
        .unwrap();
    let nodes = market.assigned(id);
    let commitments_before = market.query(id).assignments;

    let admin = market.admin.clone();
    let upgrades = [
        (
            market.registry.clone(),
            registry_code(),
            "nesa-kernel-registry",
        ),
        (market.staking.clone(), staking_code(), "nesa-node-staking"),
        (
            market.market.clone(),
            market_code(),
            "nesa-inference-market",
        ),
    ];
    for (contract, code, name) in upgrades {
        assert_eq!(contract_version(&market, &contract)["contract"], name);
        let new_code = market.app.store_code(code);
        let response = market
            .app
            .migrate_contract(admin.clone(), contract.clone(), &MigrateMsg {}, new_code)
            .unwrap();
        assert_eq!(attribute(&response, "wasm", "contract"), name);
        assert_eq!(
            market.app.contract_data(&contract).unwrap().code_id,
            new_code
        );
    }
    assert_eq!(
        market.query(id).assignments,
        commitments_before,
        "state kept"
    );
    assert_eq!(market.assigned(id), nodes);

    market.play(id, &[Honest, Honest, Honest]);
    assert_eq!(market.query(id).query.status, QueryStatus::Settled);
}

#[test]
fn only_the_admin_may_migrate_and_never_onto_another_contracts_state() {
    let mut market = Market::new();
    let stranger = market.user();
    let new_market_code = market.app.store_code(market_code());
    let contract = market.market.clone();
    assert!(market
        .app
        .migrate_contract(stranger, contract, &MigrateMsg {}, new_market_code)
        .is_err());

    let admin = market.admin.clone();
    let staking = market.staking.clone();
    let error = market
        .app
        .migrate_contract(admin, staking, &MigrateMsg {}, new_market_code)
        .unwrap_err();
    assert!(
        format!("{error:#}").contains("holds the state of nesa-node-staking"),
        "{error:#}"
    );
}
