//! The embedded CosmWasm VM running the compiled probe contract (`scripts/build-contracts`)
//! through signed transactions, checked against x/wasm semantics.

mod support;

use cosmwasm_std::{instantiate2_address, CanonicalAddr};
use nesa_sdk::cosmrs::proto::cosmwasm::wasm::v1 as proto;
use nesa_sdk::cosmrs::Any;
use nesa_sdk::AddressExt;
use prost::Message;
use serde_json::{json, Value};
use support::{TestAccount, TestChain};
use tendermint_proto::v0_38::abci::ExecTxResult;

const GAS: u64 = 3_000_000;
/// Uploads pay 10 gas per tx byte and 3 per wasm byte compiled, as on wasmd.
const UPLOAD_GAS: u64 = 20_000_000;
const FUNDS: u128 = 100_000_000_000;

fn probe_wasm() -> Vec<u8> {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../artifacts/nesa_probe.wasm");
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run scripts/build-contracts)", path.display()))
}

fn any(type_url: &str, msg: impl Message) -> Any {
    Any {
        type_url: type_url.into(),
        value: msg.encode_to_vec(),
    }
}

fn attribute(result: &ExecTxResult, kind: &str, key: &str) -> Option<String> {
    result
        .events
        .iter()
        .filter(|e| e.r#type == kind)
        .flat_map(|e| &e.attributes)
        .find(|a| a.key == key)
        .map(|a| a.value.clone())
}

struct Env {
    chain: TestChain,
    alice: TestAccount,
    bob: TestAccount,
    code_id: u64,
}

impl Env {
    fn new(name: &str) -> Env {
        let alice = TestAccount::from_seed(1, 0);
        let bob = TestAccount::from_seed(2, 1);
        let chain = TestChain::new(name, &[(&alice.address, FUNDS), (&bob.address, FUNDS)]);
        let mut env = Env {
            chain,
            alice,
            bob,
            code_id: 0,
        };
        let store = any(
            "/cosmwasm.wasm.v1.MsgStoreCode",
            proto::MsgStoreCode {
                sender: env.alice.address.to_string(),
                wasm_byte_code: probe_wasm(),
                instantiate_permission: None,
            },
        );
        let tx = env.alice.sign_with_gas(vec![store], UPLOAD_GAS);
        let result = env.chain.run(&tx);
        assert_eq!(result.code, 0, "store: {}", result.log);
        env.code_id = attribute(&result, "store_code", "code_id")
            .unwrap()
            .parse()
            .unwrap();
        env
    }

    fn alice_runs(&mut self, msgs: Vec<Any>) -> ExecTxResult {
        let tx = self.alice.sign_with_gas(msgs, GAS);
        let result = self.chain.run(&tx);
        // A transaction rejected at CheckTx did not use its sequence.
        self.alice.sequence = self.chain.sequence(&self.alice.address);
        result
    }

    fn instantiate(&mut self, label: &str, funds: u128, admin: Option<&str>) -> String {
        let msg = proto::MsgInstantiateContract {
            sender: self.alice.address.to_string(),
            admin: admin.unwrap_or_default().to_string(),
            code_id: self.code_id,
            label: label.into(),
            msg: br#"{}"#.to_vec(),
            funds: if funds > 0 { vec![unes(funds)] } else { vec![] },
        };
        let result = self.alice_runs(vec![any("/cosmwasm.wasm.v1.MsgInstantiateContract", msg)]);
        assert_eq!(result.code, 0, "instantiate: {}", result.log);
        attribute(&result, "instantiate", "_contract_address")
            .expect("instantiate event names the contract")
    }

    fn execute(&mut self, contract: &str, msg: Value) -> ExecTxResult {
        let execute = proto::MsgExecuteContract {
            sender: self.alice.address.to_string(),
            contract: contract.into(),
            msg: serde_json::to_vec(&msg).unwrap(),
            funds: vec![],
        };
        self.alice_runs(vec![any("/cosmwasm.wasm.v1.MsgExecuteContract", execute)])
    }

    fn get(&self, contract: &str, key: &str) -> Option<String> {
        let answer = self
            .chain
            .query_smart(contract, json!({"get": {"key": key}}))
            .unwrap();
        answer["value"].as_str().map(str::to_string)
    }

    fn count(&self, contract: &str) -> u64 {
        self.chain
            .query_smart(contract, json!({"count": {}}))
            .unwrap()["count"]
            .as_u64()
            .unwrap()
    }
}

fn unes(amount: u128) -> nesa_sdk::cosmrs::proto::cosmos::base::v1beta1::Coin {
    nesa_sdk::cosmrs::proto::cosmos::base::v1beta1::Coin {
        denom: "unes".into(),
        amount: amount.to_string(),
    }
}

fn execute_json(contract: &str, msg: Value) -> Value {
    use base64::Engine;
    let encoded =
        base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(&msg).unwrap());
    json!({"wasm": {"execute": {"contract_addr": contract, "msg": encoded, "funds": []}}})
}

#[test]
fn a_contract_is_stored_instantiated_with_funds_executed_and_queried() {
    let mut env = Env::new("wasm-lifecycle");
    let contract = env.instantiate("probe", 1_000, None);
    let expected = nesa_app::modules::wasm::classic_address(env.code_id, 1).to_string();
    assert_eq!(
        contract, expected,
        "the classic address of (code 1, instance 1), as wasmd derives it"
    );
    assert_eq!(
        env.chain.balance(&contract),
        1_000,
        "funds moved to the contract"
    );

    for _ in 0..3 {
        let result = env.execute(&contract, json!({"increment": {}}));
        assert_eq!(result.code, 0, "{}", result.log);
        assert_eq!(
            attribute(&result, "execute", "_contract_address").as_deref(),
            Some(contract.as_str())
        );
        assert!(
            attribute(&result, "wasm-incremented", "count").is_some(),
            "custom events become wasm-<type>"
        );
    }
    assert_eq!(env.count(&contract), 3);

    let set = env.execute(&contract, json!({"set": {"key": "b", "value": "2"}}));
    assert_eq!(set.code, 0, "{}", set.log);
    env.execute(&contract, json!({"set": {"key": "a", "value": "1"}}));
    let list = env
        .chain
        .query_smart(&contract, json!({"list": {}}))
        .unwrap();
    let keys: Vec<&str> = list["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["key"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        vec!["a", "b"],
        "contract storage iterates in key order"
    );
}

#[test]
fn instantiate2_addresses_equal_cosmwasm_std_instantiate2_address() {
    let mut env = Env::new("wasm-instantiate2");
    let salt = b"nesa-salt".to_vec();
    let msg = proto::MsgInstantiateContract2 {
        sender: env.alice.address.to_string(),
        admin: String::new(),
        code_id: env.code_id,
        label: "predictable".into(),
        msg: b"{}".to_vec(),
        funds: vec![],
        salt: salt.clone(),
        fix_msg: false,
    };
    let result = env.alice_runs(vec![any(
        "/cosmwasm.wasm.v1.MsgInstantiateContract2",
        msg.clone(),
    )]);
    assert_eq!(result.code, 0, "{}", result.log);
    let address = attribute(&result, "instantiate", "_contract_address").unwrap();

    let checksum = {
        use sha2::Digest;
        sha2::Sha256::digest(probe_wasm())
    };
    let creator = CanonicalAddr::from(env.alice.address.to_account_id().to_bytes());
    let expected = instantiate2_address(&checksum, &creator, &salt).unwrap();
    let (_, actual) = bech32::decode(&address).unwrap();
    assert_eq!(actual, expected.as_slice());

    let again = env.alice_runs(vec![any("/cosmwasm.wasm.v1.MsgInstantiateContract2", msg)]);
    assert_eq!(
        again.code, 15,
        "the same salt again collides: {}",
        again.log
    );
}

#[test]
fn a_successful_submessage_commits_and_replies() {
    let mut env = Env::new("wasm-submsg-ok");
    let caller = env.instantiate("caller", 0, None);
    let callee = env.instantiate("callee", 0, None);
    let calls = json!([
        {"id": 1, "reply_on": "success", "msg": execute_json(&callee, json!({"increment": {}}))},
        {"id": 2, "reply_on": "always", "msg": execute_json(&callee, json!({"increment": {}}))},
        {"id": 3, "reply_on": "never", "msg": execute_json(&callee, json!({"increment": {}}))},
    ]);
    let result = env.execute(&caller, json!({"dispatch": {"calls": calls}}));
    assert_eq!(result.code, 0, "{}", result.log);
    assert_eq!(env.count(&callee), 3);
    assert!(env.get(&caller, "reply:1").unwrap().starts_with("ok:"));
    assert!(env.get(&caller, "reply:2").unwrap().starts_with("ok:"));
    assert_eq!(
        env.get(&caller, "reply:3"),
        None,
        "reply_on never does not reply"
    );
    assert!(attribute(&result, "reply", "_contract_address").is_some());
}

#[test]
fn a_failing_submessage_with_reply_on_error_rolls_back_only_the_sub_call() {
    let mut env = Env::new("wasm-submsg-err");
    let caller = env.instantiate("caller", 0, None);
    let callee = env.instantiate("callee", 0, None);
    let calls = json!([
        {"id": 7, "reply_on": "error", "msg": execute_json(&callee, json!({"write_and_fail": {"key": "x", "value": "y"}}))},
        {"id": 8, "reply_on": "error", "msg": execute_json(&callee, json!({"increment": {}}))},
    ]);
    let result = env.execute(&caller, json!({"dispatch": {"calls": calls}}));
    assert_eq!(result.code, 0, "{}", result.log);
    assert_eq!(
        env.get(&callee, "x"),
        None,
        "the failed sub-call's write was rolled back"
    );
    assert_eq!(env.count(&callee), 1, "the next submessage still ran");
    let reply = env.get(&caller, "reply:7").unwrap();
    assert_eq!(
        reply, "err:codespace: wasm, code: 5",
        "the reply sees a redacted error"
    );
    assert_eq!(
        env.get(&caller, "reply:8"),
        None,
        "reply_on error does not reply on success"
    );
}

#[test]
fn a_failing_submessage_without_an_error_reply_fails_the_whole_transaction() {
    let mut env = Env::new("wasm-submsg-abort");
    let caller = env.instantiate("caller", 0, None);
    let callee = env.instantiate("callee", 0, None);
    for reply_on in ["never", "success"] {
        let calls = json!([
            {"id": 1, "reply_on": "never", "msg": execute_json(&callee, json!({"increment": {}}))},
            {"id": 2, "reply_on": reply_on, "msg": execute_json(&callee, json!({"fail": {"reason": "no"}}))},
        ]);
        let result = env.execute(&caller, json!({"dispatch": {"calls": calls}}));
        assert_eq!(result.code, 5, "{reply_on}: {}", result.log);
        assert_eq!(result.codespace, "wasm");
        assert_eq!(
            env.count(&callee),
            0,
            "{reply_on}: the earlier successful submessage was reverted too"
        );
    }
    let calls = json!([{"id": 999, "reply_on": "success", "msg": execute_json(&callee, json!({"increment": {}}))}]);
    let result = env.execute(&caller, json!({"dispatch": {"calls": calls}}));
    assert_ne!(result.code, 0, "a failing reply fails the transaction");
    assert_eq!(env.count(&callee), 0);
}

#[test]
fn contracts_send_and_burn_coins() {
    let mut env = Env::new("wasm-bank");
    let contract = env.instantiate("treasury", 10_000, None);
    let bob = env.bob.address.to_string();
    let before = env.chain.balance(&env.bob.address);
    let send = env.execute(
        &contract,
        json!({"send": {"to": bob, "amount": [{"denom": "unes", "amount": "2500"}]}}),
    );
    assert_eq!(send.code, 0, "{}", send.log);
    assert_eq!(env.chain.balance(&env.bob.address), before + 2_500);
    let burn = env.execute(
        &contract,
        json!({"burn": {"amount": [{"denom": "unes", "amount": "500"}]}}),
    );
    assert_eq!(burn.code, 0, "{}", burn.log);
    assert_eq!(env.chain.balance(&contract), 7_000);
    let overdraw = env.execute(
        &contract,
        json!({"send": {"to": bob, "amount": [{"denom": "unes", "amount": "999999"}]}}),
    );
    assert_eq!(overdraw.code, 5, "{}", overdraw.log);
    assert_eq!(env.chain.balance(&contract), 7_000);
}

#[test]
fn a_contract_queries_another_contract() {
    let mut env = Env::new("wasm-query");
    let asker = env.instantiate("asker", 0, None);
    let answerer = env.instantiate("answerer", 0, None);
    env.execute(&answerer, json!({"increment": {}}));
    use base64::Engine;
    let question = base64::engine::general_purpose::STANDARD.encode(br#"{"count":{}}"#);
    let result = env.execute(
        &asker,
        json!({"query_other": {"contract": answerer, "msg": question}}),
    );
    assert_eq!(result.code, 0, "{}", result.log);
    let stored: Value = serde_json::from_str(&env.get(&asker, "queried").unwrap()).unwrap();
    assert_eq!(stored, json!({"count": 1}));
    let balance = env
        .chain
        .query_smart(
            &asker,
            json!({"balance": {"address": env.alice.address.to_string(), "denom": "unes"}}),
        )
        .unwrap();
    assert_eq!(
        balance["amount"]["amount"]
            .as_str()
            .unwrap()
            .parse::<u128>()
            .unwrap(),
        env.chain.balance(&env.alice.address)
    );
}

#[test]
fn only_the_admin_migrates_a_contract() {
    let mut env = Env::new("wasm-migrate");
    let alice = env.alice.address.to_string();
    let contract = env.instantiate("upgradable", 0, Some(&alice));
    let code_id = env.code_id;
    let migrate = |sender: &str| proto::MsgMigrateContract {
        sender: sender.into(),
        contract: contract.clone(),
        code_id,
        msg: br#"{"note":"v2"}"#.to_vec(),
    };
    let by_bob = migrate(&env.bob.address.to_string());
    let tx = env.bob.sign_with_gas(
        vec![any("/cosmwasm.wasm.v1.MsgMigrateContract", by_bob)],
        GAS,
    );
    let refused = env.chain.run(&tx);
    assert_eq!(refused.code, 4, "{}", refused.log);
    assert!(refused.log.contains("not the admin"), "{}", refused.log);
    let by_alice = migrate(&alice);
    let result = env.alice_runs(vec![any("/cosmwasm.wasm.v1.MsgMigrateContract", by_alice)]);
    assert_eq!(result.code, 0, "{}", result.log);
    assert_eq!(
        env.chain
            .query_smart(&contract, json!({"migrated": {}}))
            .unwrap()["note"],
        "v2"
    );

    let clear = proto::MsgClearAdmin {
        sender: alice.clone(),
        contract: contract.clone(),
    };
    assert_eq!(
        env.alice_runs(vec![any("/cosmwasm.wasm.v1.MsgClearAdmin", clear)])
            .code,
        0
    );
    let again = env.alice_runs(vec![any(
        "/cosmwasm.wasm.v1.MsgMigrateContract",
        migrate(&alice),
    )]);
    assert_eq!(again.code, 4, "no admin, no migration: {}", again.log);
}

#[test]
fn an_endless_loop_runs_out_of_gas_and_still_pays_the_fee() {
    let mut env = Env::new("wasm-gas");
    let contract = env.instantiate("looper", 0, None);
    let before = env.chain.balance(&env.alice.address);
    let sequence = env.chain.sequence(&env.alice.address);
    let result = env.execute(&contract, json!({"loop": {}}));
    assert_eq!(result.code, 11, "{}", result.log);
    assert_eq!(result.codespace, "sdk");
    assert!(result.gas_used as u64 >= GAS, "all gas was consumed");
    let fee = (GAS as u128 * 25).div_ceil(1000);
    assert_eq!(env.chain.balance(&env.alice.address), before - fee);
    assert_eq!(env.chain.sequence(&env.alice.address), sequence + 1);
}

#[test]
fn a_panicking_contract_fails_the_message_cleanly() {
    let mut env = Env::new("wasm-panic");
    let contract = env.instantiate("panicker", 0, None);
    let result = env.execute(&contract, json!({"panic": {}}));
    assert_eq!(result.code, 5, "{}", result.log);
    assert_eq!(result.codespace, "wasm");
    let after = env.execute(&contract, json!({"increment": {}}));
    assert_eq!(after.code, 0, "the contract keeps working: {}", after.log);
}

#[test]
fn invalid_json_is_rejected_before_execution() {
    let mut env = Env::new("wasm-json");
    let contract = env.instantiate("strict", 0, None);
    let execute = proto::MsgExecuteContract {
        sender: env.alice.address.to_string(),
        contract: contract.clone(),
        msg: b"{not json".to_vec(),
        funds: vec![],
    };
    let result = env.alice_runs(vec![any("/cosmwasm.wasm.v1.MsgExecuteContract", execute)]);
    assert_eq!(result.code, 10, "{}", result.log);
    assert_eq!(result.codespace, "wasm");
    let unknown = env.execute(&contract, json!({"no_such_variant": {}}));
    assert_eq!(
        unknown.code, 5,
        "the contract rejects an unknown variant: {}",
        unknown.log
    );
}

#[test]
fn a_wasm_blob_that_is_not_a_contract_is_rejected_at_upload() {
    let mut env = Env::new("wasm-reject");
    // A valid, empty wasm module: no memory, no entry points.
    let empty_module = b"\0asm\x01\0\0\0".to_vec();
    for code in [empty_module, b"definitely not wasm".to_vec()] {
        let store = proto::MsgStoreCode {
            sender: env.alice.address.to_string(),
            wasm_byte_code: code,
            instantiate_permission: None,
        };
        let tx = env.alice.sign_with_gas(
            vec![any("/cosmwasm.wasm.v1.MsgStoreCode", store)],
            UPLOAD_GAS,
        );
        let result = env.chain.run(&tx);
        assert_eq!(result.code, 2, "{}", result.log);
        assert_eq!(result.codespace, "wasm");
    }
}

#[test]
fn genesis_stores_codes_and_instantiates_contracts() {
    use base64::Engine;
    let alice = TestAccount::from_seed(1, 0);
    let mut app_state = nesa_genesis::AppState::default();
    app_state
        .add_balance(
            &alice.address.to_string(),
            nesa_genesis::GenesisCoin::parse_list("1000unes").unwrap(),
        )
        .unwrap();
    app_state.wasm.codes.push(nesa_genesis::GenesisCode {
        wasm_byte_code: base64::engine::general_purpose::STANDARD.encode(probe_wasm()),
        creator: alice.address.to_string(),
        pinned: true,
    });
    app_state
        .wasm
        .contracts
        .push(nesa_genesis::GenesisContract {
            code_id: 1,
            label: "genesis-probe".into(),
            msg: json!({}),
            creator: alice.address.to_string(),
            admin: None,
        });
    let chain = TestChain::from_app_state("wasm-genesis", app_state);
    let contract = nesa_app::modules::wasm::classic_address(1, 1).to_string();
    assert_eq!(
        chain.query_smart(&contract, json!({"count": {}})).unwrap(),
        json!({"count": 0})
    );
    assert_eq!(
        chain.query_smart(&contract, json!({"owner": {}})).unwrap()["owner"],
        alice.address.to_string()
    );
    let stats = chain.app.wasm().stats();
    assert!(
        stats.hits_pinned_memory_cache >= 1,
        "genesis codes are pinned: {stats:?}"
    );
}

/// The app hash after a fixed sequence of wasm transactions (deterministic execution). It
/// covers the probe's code bytes, so it changes when the probe contract or its toolchain does;
/// `scripts/build-contracts` builds reproducibly (paths remapped, one contract per build).
const SCRIPTED_WASM_APP_HASH: &str =
    "BAEFAE5E39ADBBA3F7A35627BFE485B67F10B5800F3CC44C44F87897B10528F0";

#[test]
fn the_app_hash_after_a_scripted_wasm_sequence_is_pinned() {
    let mut env = Env::new("wasm-snapshot");
    let a = env.instantiate("a", 500, None);
    let b = env.instantiate("b", 0, None);
    env.execute(&a, json!({"increment": {}}));
    env.execute(&a, json!({"set": {"key": "k", "value": "v"}}));
    let calls =
        json!([{"id": 4, "reply_on": "always", "msg": execute_json(&b, json!({"increment": {}}))}]);
    env.execute(&a, json!({"dispatch": {"calls": calls}}));
    env.execute(
        &a,
        json!({"send": {"to": b, "amount": [{"denom": "unes", "amount": "5"}]}}),
    );
    env.execute(&b, json!({"fail": {"reason": "x"}}));
    // The test chain's blocks are one second apart from a fixed epoch, so block times (which
    // contracts see and the state records) are the same on every run.
    assert_eq!(
        hex::encode_upper(env.chain.app_hash()),
        SCRIPTED_WASM_APP_HASH
    );
}

impl Env {
    fn execute_with_gas(&mut self, contract: &str, msg: Value, gas: u64) -> ExecTxResult {
        let tx = execute_tx(self, contract, msg, gas);
        self.alice.sequence += 1;
        let result = self.chain.run(&tx);
        self.alice.sequence = self.chain.sequence(&self.alice.address);
        result
    }

    /// A contract holding `entries` raw entries of about 30 bytes.
    fn filled(&mut self, label: &str, entries: u32) -> String {
        let contract = self.instantiate(label, 0, None);
        for start in (0..entries).step_by(500) {
            let count = 500.min(entries - start);
            let fill = self.execute_with_gas(
                &contract,
                json!({"fill": {"start": start, "count": count}}),
                20_000_000,
            );
            assert_eq!(fill.code, 0, "fill: {}", fill.log);
        }
        contract
    }

    fn gas_of(&mut self, contract: &str, msg: Value) -> u64 {
        let result = self.execute(contract, msg.clone());
        assert_eq!(result.code, 0, "{msg}: {}", result.log);
        result.gas_used as u64
    }
}

/// Gas of `make`'s transaction minus that of `baseline`'s, on the same contract.
fn extra_gas(env: &mut Env, contract: &str, baseline: Value, make: Value) -> u64 {
    let base = env.gas_of(contract, baseline);
    env.gas_of(contract, make).saturating_sub(base)
}

#[test]
fn opening_an_iterator_costs_a_seek_and_never_reads_the_range_up_front() {
    let mut env = Env::new("wasm-iterator-cost");
    let contract = env.filled("iterated", 2_000);
    // 100 iterators over 2,000 entries: each pays one seek (a step and its item's bytes),
    // however long the range behind it.
    let hundred = extra_gas(
        &mut env,
        &contract,
        json!({"iterate": {"iterators": 1, "steps": 0}}),
        json!({"iterate": {"iterators": 101, "steps": 0}}),
    );
    let item = 30 + 3 * (b"fill:00000000".len() as u64 + 16);
    assert!(
        hundred >= 100 * item,
        "100 iterators must cost at least 100 seeks of {item} gas, cost {hundred}"
    );
    assert!(
        hundred < 100 * item * 3,
        "creating an iterator reads one item, not the range: {hundred} gas for 100"
    );
    // Each step costs its item.
    let steps = extra_gas(
        &mut env,
        &contract,
        json!({"iterate": {"iterators": 1, "steps": 0}}),
        json!({"iterate": {"iterators": 1, "steps": 1000}}),
    );
    assert!(steps >= 1000 * item, "1000 steps cost {steps}");
}

#[test]
fn iterators_read_in_both_directions_over_the_live_state() {
    let mut env = Env::new("wasm-iterator-order");
    let contract = env.filled("ordered", 10);
    let up = env.execute(&contract, json!({"iterate": {"iterators": 1, "steps": 3}}));
    assert_eq!(up.code, 0, "{}", up.log);
    assert_eq!(attribute(&up, "wasm", "seen").as_deref(), Some("3"));
    assert_eq!(attribute(&up, "wasm", "first").as_deref(), Some("counter"));
    let down = env.execute(
        &contract,
        json!({"iterate": {"iterators": 2, "steps": 20, "reverse": true}}),
    );
    assert_eq!(down.code, 0, "{}", down.log);
    // 10 fill entries, the counter and the owner, read by both iterators.
    assert_eq!(attribute(&down, "wasm", "seen").as_deref(), Some("24"));
    assert_eq!(attribute(&down, "wasm", "first").as_deref(), Some("owner"));
}

#[test]
fn a_contract_cannot_keep_more_iterators_open_than_the_bound() {
    let mut env = Env::new("wasm-iterator-bound");
    let contract = env.instantiate("flooder", 0, None);
    let result = env.execute_with_gas(
        &contract,
        json!({"iterate": {"iterators": 257, "steps": 0}}),
        20_000_000,
    );
    assert_ne!(result.code, 0, "257 open iterators must be refused");
    assert!(
        result.log.contains("at most 256 iterators"),
        "{}",
        result.log
    );
}

#[test]
fn an_iterator_flood_runs_out_of_gas_and_the_chain_goes_on() {
    let mut env = Env::new("wasm-iterator-flood");
    let contract = env.filled("flooded", 2_000);
    let started = std::time::Instant::now();
    let result = env.execute(
        &contract,
        json!({"iterate": {"iterators": 256, "steps": 100000}}),
    );
    assert_eq!(result.code, 11, "out of gas: {}", result.log);
    let again = env.execute(&contract, json!({"increment": {}}));
    assert_eq!(again.code, 0, "the next transaction runs: {}", again.log);
    eprintln!("iterator flood ended in {:?}", started.elapsed());
}

#[test]
fn events_and_response_data_are_charged_per_attribute_and_byte() {
    let mut env = Env::new("wasm-event-gas");
    let contract = env.instantiate("emitter", 0, None);
    let extra = extra_gas(
        &mut env,
        &contract,
        json!({"emit": {"attributes": 0, "value_bytes": 0}}),
        json!({"emit": {"attributes": 1000, "value_bytes": 100, "data_bytes": 10000}}),
    );
    // wasmd's costs: 10 per attribute, 1 per byte past the first 100, 1 per data byte.
    let charged = 1000 * 10 + (1000 * (4 + 100) - 100) + 10_000;
    assert!(extra >= charged, "a 114 kB response cost only {extra} gas");
    // With gas for the contract's work but not for its events, the call runs out of gas.
    let base = env.gas_of(
        &contract,
        json!({"emit": {"attributes": 0, "value_bytes": 0}}),
    );
    let short = env.execute_with_gas(
        &contract,
        json!({"emit": {"attributes": 2000, "value_bytes": 100}}),
        base + 100_000,
    );
    assert_eq!(short.code, 11, "out of gas: {}", short.log);
    // A response larger than the VM reads (256 KiB) fails cleanly.
    let giant = env.execute(
        &contract,
        json!({"emit": {"attributes": 3000, "value_bytes": 1000}}),
    );
    assert_eq!(giant.code, 5, "{}", giant.log);
    assert!(giant.log.contains("Data too long"), "{}", giant.log);
    let after = env.execute(&contract, json!({"increment": {}}));
    assert_eq!(after.code, 0, "the next transaction runs: {}", after.log);
}

/// Alice's signed execution of `msg` on `contract` with `gas`; her sequence stays where it
/// was (simulations do not use it).
fn execute_tx(env: &mut Env, contract: &str, msg: Value, gas: u64) -> Vec<u8> {
    let execute = proto::MsgExecuteContract {
        sender: env.alice.address.to_string(),
        contract: contract.into(),
        msg: serde_json::to_vec(&msg).unwrap(),
        funds: vec![],
    };
    let tx = env.alice.sign_with_gas(
        vec![any("/cosmwasm.wasm.v1.MsgExecuteContract", execute)],
        gas,
    );
    env.alice.sequence -= 1;
    tx
}

#[test]
fn a_simulated_endless_loop_runs_out_of_gas_at_the_chain_maximum() {
    let mut env = Env::new("wasm-simulate-loop");
    let contract = env.instantiate("looper", 0, None);
    // The limit the transaction names bounds its simulation.
    let limited = execute_tx(&mut env, &contract, json!({"loop": {}}), 2_000_000);
    let error = env.chain.try_simulate(&limited).unwrap_err();
    assert!(error.contains("out of gas"), "{error}");
    // Without a limit (as CosmJS simulates), the chain's maximum per transaction bounds it.
    let unlimited = execute_tx(&mut env, &contract, json!({"loop": {}}), 0);
    let started = std::time::Instant::now();
    let error = env.chain.try_simulate(&unlimited).unwrap_err();
    assert!(error.contains("out of gas"), "{error}");
    eprintln!(
        "a loop simulated to the chain maximum ended in {:?}",
        started.elapsed()
    );
}

#[test]
fn a_smart_query_that_loops_or_floods_runs_out_of_gas() {
    let mut env = Env::new("wasm-query-loop");
    let contract = env.filled("queried", 2_000);
    let error = env
        .chain
        .query_smart(&contract, json!({"loop": {}}))
        .unwrap_err();
    assert!(error.contains("out of gas"), "{error}");
    let error = env
        .chain
        .query_smart(&contract, json!({"scan": {"rounds": 1000}}))
        .unwrap_err();
    assert!(error.contains("out of gas"), "{error}");
    let one = env
        .chain
        .query_smart(&contract, json!({"scan": {"rounds": 1}}))
        .unwrap();
    assert_eq!(one["count"], 2_002);
}

#[test]
fn simulating_an_upload_never_writes_the_module_cache() {
    let mut env = Env::new("wasm-simulate-cache");
    let cache_files = || walk(&env.chain.dir.join("wasm"));
    fn walk(dir: &std::path::Path) -> usize {
        std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| {
                        if e.path().is_dir() {
                            walk(&e.path())
                        } else {
                            1
                        }
                    })
                    .sum()
            })
            .unwrap_or(0)
    }
    let before = cache_files();
    // A different code (a trailing custom section changes the checksum, not the program).
    let mut wasm = probe_wasm();
    wasm.extend_from_slice(&[0, 6, 5, b'n', b'o', b'n', b'c', b'e']);
    let store = any(
        "/cosmwasm.wasm.v1.MsgStoreCode",
        proto::MsgStoreCode {
            sender: env.alice.address.to_string(),
            wasm_byte_code: wasm,
            instantiate_permission: None,
        },
    );
    let tx = env.alice.sign_with_gas(vec![store], 0);
    let gas = env.chain.simulate(&tx);
    assert!(gas > 0);
    assert_eq!(
        cache_files(),
        before,
        "a simulation compiled or stored a module"
    );
}
