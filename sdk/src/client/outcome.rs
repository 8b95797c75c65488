//! The result of an executed transaction, as reported by the `tx` RPC.

use cosmrs::tendermint::{abci, Hash};
use serde::Serialize;
use tendermint_rpc::endpoint::tx;

/// One event emitted while executing a transaction (e.g. `transfer`, `wasm`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TxEvent {
    /// Event type, e.g. `coin_received` or `wasm-query_assigned`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Attributes in emission order.
    pub attributes: Vec<TxEventAttribute>,
}

/// One key/value attribute of a [`TxEvent`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TxEventAttribute {
    /// Attribute key.
    pub key: String,
    /// Attribute value.
    pub value: String,
}

/// An executed transaction: where it landed, whether it succeeded, and what it emitted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TxOutcome {
    /// Transaction hash (uppercase hex).
    pub hash: Hash,
    /// Block height the transaction was included at.
    pub height: u64,
    /// Result code: 0 is success.
    pub code: u32,
    /// Module namespace of a non-zero code.
    pub codespace: String,
    /// Log: the error message when `code` is non-zero.
    pub log: String,
    /// Gas limit the transaction requested.
    pub gas_wanted: u64,
    /// Gas the transaction consumed.
    pub gas_used: u64,
    /// Events emitted by the transaction.
    pub events: Vec<TxEvent>,
}

impl TxOutcome {
    /// True when the transaction's messages executed successfully.
    pub fn is_success(&self) -> bool {
        self.code == 0
    }

    /// The first value of attribute `key` in an event of type `kind`.
    pub fn event_attribute(&self, kind: &str, key: &str) -> Option<&str> {
        self.events
            .iter()
            .filter(|event| event.kind == kind)
            .flat_map(|event| &event.attributes)
            .find(|attribute| attribute.key == key)
            .map(|attribute| attribute.value.as_str())
    }

    /// Attribute `key` of the contract event `wasm-<event>` parsed as `T`, e.g. the query id
    /// of `query_submitted`; `None` when absent or not a `T`.
    pub fn contract_attribute<T: std::str::FromStr>(&self, event: &str, key: &str) -> Option<T> {
        self.event_attribute(&nesa_market::events::wasm_type(event), key)?
            .parse()
            .ok()
    }
}

impl From<tx::Response> for TxOutcome {
    fn from(response: tx::Response) -> Self {
        let result = response.tx_result;
        Self {
            hash: response.hash,
            height: response.height.value(),
            code: result.code.value(),
            codespace: result.codespace,
            log: result.log,
            gas_wanted: u64::try_from(result.gas_wanted).unwrap_or(0),
            gas_used: u64::try_from(result.gas_used).unwrap_or(0),
            events: result.events.into_iter().map(TxEvent::from).collect(),
        }
    }
}

impl From<abci::Event> for TxEvent {
    fn from(event: abci::Event) -> Self {
        let attributes = event
            .attributes
            .iter()
            .map(|attribute| TxEventAttribute {
                // CometBFT 0.38 attributes are UTF-8 strings; lossy decoding only matters for 0.34 nodes.
                key: String::from_utf8_lossy(attribute.key_bytes()).into_owned(),
                value: String::from_utf8_lossy(attribute.value_bytes()).into_owned(),
            })
            .collect();
        Self {
            kind: event.kind,
            attributes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome_with_events(events: Vec<TxEvent>) -> TxOutcome {
        TxOutcome {
            hash: Hash::None,
            height: 1,
            code: 0,
            codespace: String::new(),
            log: String::new(),
            gas_wanted: 0,
            gas_used: 0,
            events,
        }
    }

    fn event(kind: &str, pairs: &[(&str, &str)]) -> TxEvent {
        TxEvent {
            kind: kind.to_owned(),
            attributes: pairs
                .iter()
                .map(|(key, value)| TxEventAttribute {
                    key: (*key).to_owned(),
                    value: (*value).to_owned(),
                })
                .collect(),
        }
    }

    #[test]
    fn event_attribute_finds_the_first_match_by_type_and_key() {
        let outcome = outcome_with_events(vec![
            event("message", &[("action", "send")]),
            event("wasm", &[("_contract_address", "nesa1first")]),
            event("wasm", &[("_contract_address", "nesa1second")]),
        ]);
        assert_eq!(
            outcome.event_attribute("wasm", "_contract_address"),
            Some("nesa1first")
        );
        assert_eq!(outcome.event_attribute("wasm", "missing"), None);
    }

    #[test]
    fn tx_events_serialize_with_a_type_field_like_cometbft() {
        let json = serde_json::to_value(event("transfer", &[("amount", "5unes")])).unwrap();
        assert_eq!(json["type"], "transfer");
        assert_eq!(json["attributes"][0]["value"], "5unes");
    }
}
