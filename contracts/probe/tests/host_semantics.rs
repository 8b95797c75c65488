//! The probe under cw-multi-test: the reference x/wasm semantics the chain's host must match.
//!
//! Panics and infinite loops are left out: multi-test runs contracts natively, so a panic
//! would abort the test thread and a loop would never end. The chain tests those with the wasm.

use cosmwasm_std::{
    coin, coins, instantiate2_address, to_json_binary, Addr, Api, Binary, Coin, CosmosMsg, Empty,
    Event, ReplyOn, WasmMsg,
};
use cw_multi_test::{App, AppResponse, Contract, ContractWrapper, Executor};
use cw_utils::parse_instantiate_response_data;

use nesa_probe::contract::{execute, instantiate, migrate, query, reply};
use nesa_probe::msg::{
    BalanceResponse, Call, CountResponse, Entry, ExecuteMsg, InstantiateChildMsg, InstantiateMsg,
    ListResponse, MigrateMsg, MigratedResponse, OwnerResponse, QueryMsg, ValueResponse,
};
use nesa_probe::ContractError;

const DENOM: &str = "unes";

fn probe_code() -> Box<dyn Contract<Empty>> {
    Box::new(
        ContractWrapper::new(execute, instantiate, query)
            .with_reply(reply)
            .with_migrate(migrate),
    )
}

/// A multi-test chain with the probe's code stored and a funded owner.
struct Chain {
    app: App,
    owner: Addr,
    code_id: u64,
}

impl Chain {
    fn new() -> Self {
        let owner = App::default().api().addr_make("owner");
        let funded = owner.clone();
        let mut app = App::new(|router, _api, storage| {
            router
                .bank
                .init_balance(storage, &funded, coins(1_000_000, DENOM))
                .unwrap();
        });
        let code_id = app.store_code(probe_code());
        Self {
            app,
            owner,
            code_id,
        }
    }

    fn addr(&self, name: &str) -> Addr {
        self.app.api().addr_make(name)
    }

    /// Instantiates a probe owned by `owner`, with `owner` as its admin.
    fn probe(&mut self, label: &str, funds: &[Coin]) -> Addr {
        self.app
            .instantiate_contract(
                self.code_id,
                self.owner.clone(),
                &InstantiateMsg::default(),
                funds,
                label,
                Some(self.owner.to_string()),
            )
            .unwrap()
    }

    fn execute(&mut self, contract: &Addr, msg: &ExecuteMsg) -> anyhow::Result<AppResponse> {
        self.app
            .execute_contract(self.owner.clone(), contract.clone(), msg, &[])
    }

    fn get(&self, contract: &Addr, key: &str) -> Option<String> {
        let response: ValueResponse = self
            .app
            .wrap()
            .query_wasm_smart(contract, &QueryMsg::Get { key: key.into() })
            .unwrap();
        response.value
    }

    fn count(&self, contract: &Addr) -> u64 {
        let response: CountResponse = self
            .app
            .wrap()
            .query_wasm_smart(contract, &QueryMsg::Count {})
            .unwrap();
        response.count
    }

    fn balance(&self, address: &Addr) -> u128 {
        self.app
            .wrap()
            .query_balance(address, DENOM)
            .unwrap()
            .amount
            .u128()
    }
}

/// A submessage executing `msg` on `contract`.
fn call(id: u64, reply_on: ReplyOn, contract: &Addr, msg: &ExecuteMsg) -> Call {
    Call {
        id,
        reply_on,
        msg: WasmMsg::Execute {
            contract_addr: contract.to_string(),
            msg: to_json_binary(msg).unwrap(),
            funds: vec![],
        }
        .into(),
        gas_limit: None,
    }
}

fn increment() -> ExecuteMsg {
    ExecuteMsg::Increment {}
}

fn write_and_fail(key: &str) -> ExecuteMsg {
    ExecuteMsg::WriteAndFail {
        key: key.into(),
        value: "must not stay".into(),
    }
}

fn contract_error(error: &anyhow::Error) -> &ContractError {
    error
        .downcast_ref::<ContractError>()
        .unwrap_or_else(|| panic!("not a ContractError: {error:?}"))
}

#[test]
fn instantiate_defaults_owner_to_sender_and_returns_probe_data() {
    let mut chain = Chain::new();
    let response = chain
        .app
        .execute(
            chain.owner.clone(),
            WasmMsg::Instantiate {
                admin: None,
                code_id: chain.code_id,
                msg: to_json_binary(&InstantiateMsg::default()).unwrap(),
                funds: vec![],
                label: "probe".into(),
            }
            .into(),
        )
        .unwrap();

    // The data of a top-level instantiate is MsgInstantiateContractResponse{address, data}.
    let instantiated = parse_instantiate_response_data(response.data.as_ref().unwrap()).unwrap();
    assert_eq!(instantiated.data, Some(Binary::from(b"probe")));
    let probe = Addr::unchecked(instantiated.contract_address);
    response.assert_event(
        &Event::new("wasm")
            .add_attribute("_contract_address", probe.as_str())
            .add_attribute("action", "instantiate"),
    );
    let owner: OwnerResponse = chain
        .app
        .wrap()
        .query_wasm_smart(&probe, &QueryMsg::Owner {})
        .unwrap();
    assert_eq!(owner.owner, chain.owner.as_str());
    assert_eq!(chain.count(&probe), 0);
}

#[test]
fn instantiate_with_explicit_owner_stores_it() {
    let mut chain = Chain::new();
    let other = chain.addr("other");
    let probe = chain
        .app
        .instantiate_contract(
            chain.code_id,
            chain.owner.clone(),
            &InstantiateMsg {
                owner: Some(other.to_string()),
            },
            &[],
            "probe",
            None,
        )
        .unwrap();
    let owner: OwnerResponse = chain
        .app
        .wrap()
        .query_wasm_smart(&probe, &QueryMsg::Owner {})
        .unwrap();
    assert_eq!(owner.owner, other.as_str());
}

#[test]
fn increment_counts_and_emits_incremented_event() {
    let mut chain = Chain::new();
    let probe = chain.probe("probe", &[]);
    chain.execute(&probe, &increment()).unwrap();
    let response = chain.execute(&probe, &increment()).unwrap();

    assert_eq!(chain.count(&probe), 2);
    response.assert_event(
        &Event::new("wasm-incremented")
            .add_attribute("_contract_address", probe.as_str())
            .add_attribute("count", "2"),
    );
}

#[test]
fn list_returns_entries_in_ascending_key_order() {
    let mut chain = Chain::new();
    let probe = chain.probe("probe", &[]);
    for key in ["cherry", "apple", "banana"] {
        let set = ExecuteMsg::Set {
            key: key.into(),
            value: key.to_uppercase(),
        };
        chain.execute(&probe, &set).unwrap();
    }

    let all: ListResponse = chain
        .app
        .wrap()
        .query_wasm_smart(
            &probe,
            &QueryMsg::List {
                start_after: None,
                limit: None,
            },
        )
        .unwrap();
    let keys: Vec<_> = all.entries.iter().map(|entry| entry.key.as_str()).collect();
    assert_eq!(keys, ["apple", "banana", "cherry"]);

    let page: ListResponse = chain
        .app
        .wrap()
        .query_wasm_smart(
            &probe,
            &QueryMsg::List {
                start_after: Some("apple".into()),
                limit: Some(1),
            },
        )
        .unwrap();
    let banana = Entry {
        key: "banana".into(),
        value: "BANANA".into(),
    };
    assert_eq!(page.entries, [banana]);
    assert_eq!(chain.get(&probe, "durian"), None);
}

#[test]
fn send_and_burn_move_the_contracts_coins() {
    let mut chain = Chain::new();
    let probe = chain.probe("probe", &coins(1_000, DENOM));
    let recipient = chain.addr("recipient");
    assert_eq!(chain.balance(&probe), 1_000);

    let send = ExecuteMsg::Send {
        to: recipient.to_string(),
        amount: coins(300, DENOM),
    };
    chain.execute(&probe, &send).unwrap();
    chain
        .execute(
            &probe,
            &ExecuteMsg::Burn {
                amount: coins(100, DENOM),
            },
        )
        .unwrap();

    assert_eq!(chain.balance(&recipient), 300);
    assert_eq!(chain.balance(&probe), 600);
    // The probe's balance query passes through the host's bank querier.
    let through_probe: BalanceResponse = chain
        .app
        .wrap()
        .query_wasm_smart(
            &probe,
            &QueryMsg::Balance {
                address: recipient.to_string(),
                denom: DENOM.into(),
            },
        )
        .unwrap();
    assert_eq!(through_probe.amount, coin(300, DENOM));
}

#[test]
fn sending_more_than_the_balance_fails() {
    let mut chain = Chain::new();
    let probe = chain.probe("probe", &coins(10, DENOM));
    let send = ExecuteMsg::Send {
        to: chain.addr("recipient").to_string(),
        amount: coins(11, DENOM),
    };
    assert!(chain.execute(&probe, &send).is_err());
    assert_eq!(chain.balance(&probe), 10);
}

#[test]
fn reply_on_success_records_the_submessage_data() {
    let mut chain = Chain::new();
    let probe = chain.probe("probe", &[]);
    let instantiate_sibling = Call {
        id: 7,
        reply_on: ReplyOn::Success,
        msg: WasmMsg::Instantiate {
            admin: None,
            code_id: chain.code_id,
            msg: to_json_binary(&InstantiateMsg::default()).unwrap(),
            funds: vec![],
            label: "sibling".into(),
        }
        .into(),
        gas_limit: None,
    };
    let calls = vec![
        call(1, ReplyOn::Success, &probe, &increment()),
        instantiate_sibling,
    ];
    let response = chain
        .execute(&probe, &ExecuteMsg::Dispatch { calls })
        .unwrap();

    assert_eq!(chain.count(&probe), 1);
    // An execute that returns no data gives a reply with no data.
    assert_eq!(chain.get(&probe, "reply:1").as_deref(), Some("ok:"));
    // An instantiate's reply data is MsgInstantiateContractResponse{address, data}.
    let recorded = chain.get(&probe, "reply:7").unwrap();
    let data = Binary::from_base64(recorded.strip_prefix("ok:").unwrap()).unwrap();
    let sibling = parse_instantiate_response_data(&data).unwrap();
    assert_eq!(sibling.data, Some(Binary::from(b"probe")));
    assert_eq!(chain.count(&Addr::unchecked(sibling.contract_address)), 0);
    response.assert_event(
        &Event::new("wasm-replied")
            .add_attribute("_contract_address", probe.as_str())
            .add_attribute("id", "1")
            .add_attribute("outcome", "ok"),
    );
}

#[test]
fn reply_on_error_rolls_back_only_the_failed_submessage() {
    let mut chain = Chain::new();
    let probe = chain.probe("probe", &[]);
    let calls = vec![
        call(1, ReplyOn::Never, &probe, &increment()),
        call(2, ReplyOn::Error, &probe, &write_and_fail("k")),
        call(3, ReplyOn::Error, &probe, &increment()),
    ];
    let response = chain
        .execute(&probe, &ExecuteMsg::Dispatch { calls })
        .unwrap();

    // Both increments stay; the failed call's write is gone; its error reached the reply.
    assert_eq!(chain.count(&probe), 2);
    assert_eq!(chain.get(&probe, "k"), None);
    let recorded = chain.get(&probe, "reply:2").unwrap();
    assert!(recorded.starts_with("err:"), "{recorded}");
    // Replies run only for the outcome asked for.
    assert_eq!(chain.get(&probe, "reply:1"), None);
    assert_eq!(chain.get(&probe, "reply:3"), None);
    response.assert_event(
        &Event::new("wasm-replied")
            .add_attribute("id", "2")
            .add_attribute("outcome", "err"),
    );
}

#[test]
fn reply_on_success_is_skipped_when_the_submessage_fails_and_the_call_reverts() {
    let mut chain = Chain::new();
    let probe = chain.probe("probe", &[]);
    let calls = vec![
        call(1, ReplyOn::Always, &probe, &increment()),
        call(2, ReplyOn::Success, &probe, &write_and_fail("k")),
    ];
    assert!(chain
        .execute(&probe, &ExecuteMsg::Dispatch { calls })
        .is_err());

    assert_eq!(chain.count(&probe), 0);
    assert_eq!(chain.get(&probe, "reply:1"), None);
    assert_eq!(chain.get(&probe, "k"), None);
}

#[test]
fn reply_never_lets_a_failure_revert_the_whole_call() {
    let mut chain = Chain::new();
    let probe = chain.probe("probe", &[]);
    let calls = vec![
        call(1, ReplyOn::Never, &probe, &increment()),
        call(2, ReplyOn::Never, &probe, &write_and_fail("k")),
    ];
    let error = chain
        .execute(&probe, &ExecuteMsg::Dispatch { calls })
        .unwrap_err();

    assert_eq!(
        contract_error(&error),
        &ContractError::WroteThenFailed { key: "k".into() }
    );
    assert_eq!(chain.count(&probe), 0);
    assert_eq!(chain.get(&probe, "k"), None);
}

#[test]
fn reply_always_records_both_outcomes() {
    let mut chain = Chain::new();
    let probe = chain.probe("probe", &[]);
    let calls = vec![
        call(1, ReplyOn::Always, &probe, &increment()),
        call(2, ReplyOn::Always, &probe, &write_and_fail("k")),
    ];
    chain
        .execute(&probe, &ExecuteMsg::Dispatch { calls })
        .unwrap();

    assert_eq!(chain.count(&probe), 1);
    assert_eq!(chain.get(&probe, "reply:1").as_deref(), Some("ok:"));
    assert!(chain.get(&probe, "reply:2").unwrap().starts_with("err:"));
    assert_eq!(chain.get(&probe, "k"), None);
}

#[test]
fn a_failing_reply_reverts_the_submessage_and_the_whole_call() {
    let mut chain = Chain::new();
    let probe = chain.probe("probe", &[]);
    let calls = vec![call(999, ReplyOn::Success, &probe, &increment())];
    let error = chain
        .execute(&probe, &ExecuteMsg::Dispatch { calls })
        .unwrap_err();

    assert_eq!(
        contract_error(&error),
        &ContractError::ReplyFailed { id: 999 }
    );
    assert_eq!(chain.count(&probe), 0);
    assert_eq!(chain.get(&probe, "reply:999"), None);
}

#[test]
fn dispatch_rejects_the_reserved_reply_id() {
    let mut chain = Chain::new();
    let probe = chain.probe("probe", &[]);
    let calls = vec![call(u64::MAX, ReplyOn::Never, &probe, &increment())];
    let error = chain
        .execute(&probe, &ExecuteMsg::Dispatch { calls })
        .unwrap_err();
    assert_eq!(
        contract_error(&error),
        &ContractError::ReservedReplyId { id: u64::MAX }
    );
}

#[test]
fn dispatch_sends_bank_messages_from_the_contract() {
    let mut chain = Chain::new();
    let probe = chain.probe("probe", &coins(50, DENOM));
    let recipient = chain.addr("recipient");
    let bank_send: CosmosMsg = cosmwasm_std::BankMsg::Send {
        to_address: recipient.to_string(),
        amount: coins(20, DENOM),
    }
    .into();
    let calls = vec![Call {
        id: 5,
        reply_on: ReplyOn::Success,
        msg: bank_send,
        gas_limit: None,
    }];
    chain
        .execute(&probe, &ExecuteMsg::Dispatch { calls })
        .unwrap();
    assert_eq!(chain.balance(&recipient), 20);
    assert!(chain.get(&probe, "reply:5").unwrap().starts_with("ok:"));
}

#[test]
fn fail_returns_the_requested_error_and_write_and_fail_leaves_no_write() {
    let mut chain = Chain::new();
    let probe = chain.probe("probe", &[]);
    let error = chain
        .execute(
            &probe,
            &ExecuteMsg::Fail {
                reason: "because".into(),
            },
        )
        .unwrap_err();
    assert_eq!(
        contract_error(&error),
        &ContractError::Requested("because".into())
    );

    assert!(chain.execute(&probe, &write_and_fail("k")).is_err());
    assert_eq!(chain.get(&probe, "k"), None);
}

#[test]
fn query_other_stores_the_other_contracts_raw_answer() {
    let mut chain = Chain::new();
    let asker = chain.probe("asker", &[]);
    let answerer = chain.probe("answerer", &[]);
    chain.execute(&answerer, &increment()).unwrap();
    chain.execute(&answerer, &increment()).unwrap();

    let query_other = ExecuteMsg::QueryOther {
        contract: answerer.to_string(),
        msg: to_json_binary(&QueryMsg::Count {}).unwrap(),
    };
    let response = chain.execute(&asker, &query_other).unwrap();

    assert_eq!(
        chain.get(&asker, "queried").as_deref(),
        Some(r#"{"count":2}"#)
    );
    // The answer is also the call's data (wrapped in MsgExecuteContractResponse by x/wasm).
    assert!(response.data.is_some());
}

#[test]
fn query_other_fails_for_an_address_without_a_contract() {
    let mut chain = Chain::new();
    let asker = chain.probe("asker", &[]);
    let query_other = ExecuteMsg::QueryOther {
        contract: chain.addr("nobody").to_string(),
        msg: to_json_binary(&QueryMsg::Count {}).unwrap(),
    };
    assert!(chain.execute(&asker, &query_other).is_err());
    assert_eq!(chain.get(&asker, "queried"), None);
}

#[test]
fn instantiate_child_records_the_classic_address() {
    let mut chain = Chain::new();
    let probe = chain.probe("probe", &[]);
    let child = ExecuteMsg::InstantiateChild(InstantiateChildMsg {
        code_id: chain.code_id,
        label: "child".into(),
        salt: None,
        msg: to_json_binary(&InstantiateMsg::default()).unwrap(),
        funds: vec![],
        admin: None,
    });
    let response = chain.execute(&probe, &child).unwrap();

    let child = chain.get(&probe, "child").unwrap();
    response.assert_event(&Event::new("instantiate").add_attribute("_contract_address", &child));
    let info = chain.app.wrap().query_wasm_contract_info(&child).unwrap();
    assert_eq!(info.creator, probe);
    assert_eq!(info.admin, None);
    // The probe instantiated the child, so the probe is its owner.
    let owner: OwnerResponse = chain
        .app
        .wrap()
        .query_wasm_smart(&child, &QueryMsg::Owner {})
        .unwrap();
    assert_eq!(owner.owner, probe.as_str());
}

#[test]
fn instantiate2_child_address_is_the_predicted_address() {
    let mut chain = Chain::new();
    let probe = chain.probe("probe", &coins(100, DENOM));
    let salt = Binary::from(b"nesa-salt");
    let child = ExecuteMsg::InstantiateChild(InstantiateChildMsg {
        code_id: chain.code_id,
        label: "child".into(),
        salt: Some(salt.clone()),
        msg: to_json_binary(&InstantiateMsg::default()).unwrap(),
        funds: coins(40, DENOM),
        admin: Some(chain.owner.to_string()),
    });
    chain.execute(&probe, &child).unwrap();

    let checksum = chain
        .app
        .wrap()
        .query_wasm_code_info(chain.code_id)
        .unwrap()
        .checksum;
    let creator = chain.app.api().addr_canonicalize(probe.as_str()).unwrap();
    let predicted = instantiate2_address(checksum.as_slice(), &creator, &salt).unwrap();
    let predicted = chain.app.api().addr_humanize(&predicted).unwrap();
    assert_eq!(chain.get(&probe, "child"), Some(predicted.to_string()));
    // Funds moved before the child ran; the admin is the one asked for.
    assert_eq!(chain.balance(&predicted), 40);
    assert_eq!(chain.balance(&probe), 60);
    let info = chain
        .app
        .wrap()
        .query_wasm_contract_info(&predicted)
        .unwrap();
    assert_eq!(info.admin, Some(chain.owner.clone()));

    // The same salt from the same creator and code would collide: x/wasm rejects it.
    assert!(chain.execute(&probe, &child).is_err());
}

#[test]
fn admin_migrates_and_the_state_survives() {
    let mut chain = Chain::new();
    let probe = chain.probe("probe", &[]);
    chain.execute(&probe, &increment()).unwrap();
    let new_code_id = chain.app.store_code(probe_code());
    let migrate = MigrateMsg { note: "v2".into() };

    let stranger = chain.addr("stranger");
    assert!(chain
        .app
        .migrate_contract(stranger, probe.clone(), &migrate, new_code_id)
        .is_err());

    chain
        .app
        .migrate_contract(chain.owner.clone(), probe.clone(), &migrate, new_code_id)
        .unwrap();
    let migrated: MigratedResponse = chain
        .app
        .wrap()
        .query_wasm_smart(&probe, &QueryMsg::Migrated {})
        .unwrap();
    assert_eq!(migrated.note.as_deref(), Some("v2"));
    assert_eq!(chain.count(&probe), 1);
    let info = chain.app.wrap().query_wasm_contract_info(&probe).unwrap();
    assert_eq!(info.code_id, new_code_id);
}
