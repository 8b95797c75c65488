//! The probe's messages and responses (JSON, snake_case, as every CosmWasm contract).

use cosmwasm_schema::{cw_serde, QueryResponses};
use cosmwasm_std::{Binary, Coin, CosmosMsg, ReplyOn};

/// `{"owner": "nesa1…"}`; the owner defaults to the sender.
#[cw_serde]
#[derive(Default)]
pub struct InstantiateMsg {
    pub owner: Option<String>,
}

/// One action per variant; each exercises one host behaviour.
#[cw_serde]
pub enum ExecuteMsg {
    /// Counter += 1 (a storage read and write); emits `wasm-incremented` with `count`.
    Increment {},
    /// Stores `value` under `key` (readable with the `get` query).
    Set { key: String, value: String },
    /// Sends `amount` from the contract to `to` (`BankMsg::Send`).
    Send { to: String, amount: Vec<Coin> },
    /// Burns `amount` from the contract's balance (`BankMsg::Burn`).
    Burn { amount: Vec<Coin> },
    /// Dispatches every call as a submessage; `reply` records each outcome under `reply:<id>`.
    Dispatch { calls: Vec<Call> },
    /// Fails with `ContractError::Requested(reason)`.
    Fail { reason: String },
    /// Panics inside the contract (the host must turn it into an error, not crash).
    Panic {},
    /// Never returns: only the host's gas limit stops it.
    Loop {},
    /// Stores `value` under `key`, then fails: the write must be rolled back.
    WriteAndFail { key: String, value: String },
    /// Smart-queries `contract` with `msg` and stores the raw JSON answer under `queried`.
    QueryOther { contract: String, msg: Binary },
    /// Instantiates a contract as a submessage; its reply stores the new address under `child`.
    InstantiateChild(InstantiateChildMsg),
    /// Stores entries `fill:<i>` for `i` in `start..start + count` (a large range for the
    /// iterator attacks).
    Fill {
        count: u32,
        #[serde(default)]
        start: u32,
    },
    /// Opens `iterators` iterators over the whole storage at once and keeps them open; each
    /// reads `steps` items (`reverse`: from the end). Attributes: `seen` (items read) and
    /// `first` (the first key the first iterator read).
    Iterate {
        iterators: u32,
        steps: u32,
        #[serde(default)]
        reverse: bool,
    },
    /// Responds with `attributes` attributes of `value_bytes` bytes each in a custom event,
    /// and `data_bytes` of response data.
    Emit {
        attributes: u32,
        value_bytes: u32,
        #[serde(default)]
        data_bytes: u32,
    },
}

/// `instantiate_child`: instantiate `code_id` (with `salt`: instantiate2, a predictable address).
#[cw_serde]
pub struct InstantiateChildMsg {
    pub code_id: u64,
    pub label: String,
    pub salt: Option<Binary>,
    /// The child's instantiate message (JSON, base64 in the outer JSON).
    pub msg: Binary,
    #[serde(default)]
    pub funds: Vec<Coin>,
    /// Admin of the child (may migrate it); none when absent.
    pub admin: Option<String>,
}

/// One submessage of `dispatch`: `{"id": 1, "reply_on": "success", "msg": {"bank": {…}}}`.
#[cw_serde]
pub struct Call {
    /// Reply id; `reply` stores the outcome under `reply:<id>`. Id 999 makes `reply` fail.
    pub id: u64,
    /// `always`, `success`, `error` or `never`.
    pub reply_on: ReplyOn,
    /// Any message a contract may send, as JSON (`{"wasm": {"execute": {…}}}`, `{"bank": …}`).
    pub msg: CosmosMsg,
    /// Gas limit of the submessage (x/wasm: out of gas in it is an ordinary sub-call error).
    pub gas_limit: Option<u64>,
}

/// `{"note": "v2"}`: stored and readable with the `migrated` query.
#[cw_serde]
pub struct MigrateMsg {
    pub note: String,
}

#[cw_serde]
#[derive(QueryResponses)]
pub enum QueryMsg {
    /// The value stored under `key`, if any.
    #[returns(ValueResponse)]
    Get { key: String },
    /// The counter.
    #[returns(CountResponse)]
    Count {},
    /// Stored entries in ascending key order (a range over the contract's storage).
    #[returns(ListResponse)]
    List {
        start_after: Option<String>,
        limit: Option<u32>,
    },
    /// A bank balance, passed through from the host's querier.
    #[returns(BalanceResponse)]
    Balance { address: String, denom: String },
    /// The note of the last migration, if any.
    #[returns(MigratedResponse)]
    Migrated {},
    /// The owner set at instantiation.
    #[returns(OwnerResponse)]
    Owner {},
    /// Never returns: only the host's query gas limit stops it.
    #[returns(CountResponse)]
    Loop {},
    /// Reads the whole storage `rounds` times and counts the entries seen.
    #[returns(CountResponse)]
    Scan { rounds: u32 },
}

#[cw_serde]
pub struct ValueResponse {
    pub value: Option<String>,
}

#[cw_serde]
pub struct CountResponse {
    pub count: u64,
}

/// One stored key and its value.
#[cw_serde]
pub struct Entry {
    pub key: String,
    pub value: String,
}

#[cw_serde]
pub struct ListResponse {
    pub entries: Vec<Entry>,
}

/// Same shape as the bank module's balance response: `{"amount": {"denom", "amount"}}`.
#[cw_serde]
pub struct BalanceResponse {
    pub amount: Coin,
}

#[cw_serde]
pub struct MigratedResponse {
    pub note: Option<String>,
}

#[cw_serde]
pub struct OwnerResponse {
    pub owner: String,
}

#[cfg(test)]
mod tests {
    use cosmwasm_std::{from_json, to_json_string, BankMsg, Coin, CosmosMsg, ReplyOn, WasmMsg};

    use super::*;

    #[test]
    fn execute_messages_parse_from_their_documented_json() {
        let examples = [
            r#"{"increment":{}}"#,
            r#"{"set":{"key":"k","value":"v"}}"#,
            r#"{"send":{"to":"nesa1to","amount":[{"denom":"unes","amount":"5"}]}}"#,
            r#"{"burn":{"amount":[{"denom":"unes","amount":"5"}]}}"#,
            r#"{"fail":{"reason":"why"}}"#,
            r#"{"panic":{}}"#,
            r#"{"loop":{}}"#,
            r#"{"write_and_fail":{"key":"k","value":"v"}}"#,
            r#"{"query_other":{"contract":"nesa1other","msg":"eyJjb3VudCI6e319"}}"#,
            r#"{"instantiate_child":{"code_id":1,"label":"child","salt":"c2FsdA==","msg":"e30=","funds":[],"admin":null}}"#,
            r#"{"instantiate_child":{"code_id":1,"label":"child","msg":"e30="}}"#,
        ];
        for example in examples {
            from_json::<ExecuteMsg>(example).unwrap_or_else(|e| panic!("{example}: {e}"));
        }
    }

    #[test]
    fn dispatch_calls_carry_any_cosmos_msg_as_json() {
        let json = r#"{"dispatch":{"calls":[
            {"id":1,"reply_on":"success","msg":{"wasm":{"execute":{"contract_addr":"nesa1c","msg":"eyJpbmNyZW1lbnQiOnt9fQ==","funds":[]}}}},
            {"id":2,"reply_on":"error","msg":{"bank":{"send":{"to_address":"nesa1to","amount":[{"denom":"unes","amount":"1"}]}}},"gas_limit":100000}
        ]}}"#;
        let ExecuteMsg::Dispatch { calls } = from_json(json).unwrap() else {
            panic!("not a dispatch");
        };
        assert_eq!(calls[0].reply_on, ReplyOn::Success);
        assert!(matches!(
            &calls[0].msg,
            CosmosMsg::Wasm(WasmMsg::Execute { contract_addr, .. }) if contract_addr == "nesa1c"
        ));
        assert_eq!(calls[1].gas_limit, Some(100_000));
        assert_eq!(
            calls[1].msg,
            CosmosMsg::Bank(BankMsg::Send {
                to_address: "nesa1to".into(),
                amount: vec![Coin::new(1u128, "unes")],
            })
        );
    }

    #[test]
    fn queries_and_responses_have_their_documented_json() {
        for example in [
            r#"{"get":{"key":"reply:1"}}"#,
            r#"{"count":{}}"#,
            r#"{"list":{"start_after":"a","limit":10}}"#,
            r#"{"list":{}}"#,
            r#"{"balance":{"address":"nesa1a","denom":"unes"}}"#,
            r#"{"migrated":{}}"#,
            r#"{"owner":{}}"#,
        ] {
            from_json::<QueryMsg>(example).unwrap_or_else(|e| panic!("{example}: {e}"));
        }
        let list = ListResponse {
            entries: vec![Entry {
                key: "k".into(),
                value: "v".into(),
            }],
        };
        assert_eq!(
            to_json_string(&list).unwrap(),
            r#"{"entries":[{"key":"k","value":"v"}]}"#
        );
        assert_eq!(
            to_json_string(&ValueResponse { value: None }).unwrap(),
            r#"{"value":null}"#
        );
        from_json::<InstantiateMsg>(r#"{}"#).unwrap();
        from_json::<MigrateMsg>(r#"{"note":"v2"}"#).unwrap();
    }
}
