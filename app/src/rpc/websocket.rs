//! `/websocket`: CometBFT's JSON-RPC over a WebSocket, as relayers (Hermes' push event source)
//! and CosmJS' subscriptions use it. Every RPC method works over the socket; `subscribe`
//! (`{"query": "tm.event='Tx' AND transfer.recipient='nesa1…'"}`), `unsubscribe` and
//! `unsubscribe_all` follow the `NewBlock` and `Tx` events of each committed block, each event
//! matched with CometBFT's query language against its `type.key` attributes (and `tm.event`,
//! `tx.hash`, `tx.height`). As CometBFT's defaults: at most 5 subscriptions per connection and
//! 100 connections subscribed at once; a subscriber that falls behind is told its
//! subscriptions were cancelled, and one that stops reading is closed after 10 s.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::broadcast::error::RecvError;

use super::methods::{base64_encode, events_json, exec_result_json, tx_hash, RpcContext};
use super::{call, envelope, RpcError, MAX_BODY_BYTES};
use crate::solo::blockstore::StoredBlock;
use crate::solo::events::EventQuery;

/// CometBFT's `max_subscriptions_per_client`.
const MAX_SUBSCRIPTIONS_PER_CLIENT: usize = 5;
/// CometBFT's `max_subscription_clients`.
const MAX_SUBSCRIBED_CLIENTS: usize = 100;

/// How long one message may wait to be written before the connection is closed (CometBFT's
/// `writeWait`).
const WRITE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Connections holding at least one subscription.
static SUBSCRIBED_CLIENTS: AtomicUsize = AtomicUsize::new(0);

/// `GET /websocket`.
pub async fn upgrade(State(context): State<Arc<RpcContext>>, ws: WebSocketUpgrade) -> Response {
    ws.max_message_size(MAX_BODY_BYTES)
        .on_upgrade(move |socket| session(context, socket))
        .into_response()
}

/// One subscription of a connection.
struct Subscription {
    /// The `id` of the `subscribe` request: events are sent under it.
    id: Value,
    text: String,
    query: EventQuery,
}

/// The subscriptions of one connection, counted in [`SUBSCRIBED_CLIENTS`] while not empty.
#[derive(Default)]
struct Subscriptions(Vec<Subscription>);

impl Subscriptions {
    fn add(&mut self, subscription: Subscription) -> Result<(), RpcError> {
        if self.0.iter().any(|s| s.text == subscription.text) {
            return Err(RpcError::internal("already subscribed"));
        }
        if self.0.len() >= MAX_SUBSCRIPTIONS_PER_CLIENT {
            return Err(RpcError::internal(format!(
                "max_subscriptions_per_client {MAX_SUBSCRIPTIONS_PER_CLIENT} reached"
            )));
        }
        if self.0.is_empty()
            && SUBSCRIBED_CLIENTS
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                    (n < MAX_SUBSCRIBED_CLIENTS).then_some(n + 1)
                })
                .is_err()
        {
            return Err(RpcError::internal(format!(
                "max_subscription_clients {MAX_SUBSCRIBED_CLIENTS} reached"
            )));
        }
        self.0.push(subscription);
        Ok(())
    }

    fn remove(&mut self, text: &str) -> Result<(), RpcError> {
        let before = self.0.len();
        self.0.retain(|s| s.text != text);
        if self.0.len() == before {
            return Err(RpcError::internal("subscription not found"));
        }
        self.released_if_empty();
        Ok(())
    }

    fn clear(&mut self) {
        let held = !self.0.is_empty();
        self.0.clear();
        if held {
            SUBSCRIBED_CLIENTS.fetch_sub(1, Ordering::SeqCst);
        }
    }

    fn released_if_empty(&mut self) {
        if self.0.is_empty() {
            SUBSCRIBED_CLIENTS.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl Drop for Subscriptions {
    fn drop(&mut self) {
        self.clear();
    }
}

async fn session(context: Arc<RpcContext>, socket: WebSocket) {
    let (mut sink, mut stream) = socket.split();
    let mut blocks = context.committed.subscribe();
    let mut subscriptions = Subscriptions::default();
    loop {
        let outgoing: Vec<Value> = tokio::select! {
            message = stream.next() => match message {
                Some(Ok(Message::Text(text))) => {
                    let was_idle = subscriptions.0.is_empty();
                    let answer = request(&context, text.as_str(), &mut subscriptions).await;
                    if was_idle && !subscriptions.0.is_empty() {
                        // Events from the first subscription on, not the blocks before it.
                        blocks = blocks.resubscribe();
                    }
                    vec![answer]
                }
                Some(Ok(Message::Binary(_))) => vec![envelope(
                    json!(-1),
                    Err(RpcError {
                        code: -32700,
                        message: "Parse error",
                        data: "send JSON-RPC requests as text messages".into(),
                    }),
                )],
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(Message::Close(_)) | Err(_)) | None => return,
            },
            committed = blocks.recv(), if !subscriptions.0.is_empty() => match committed {
                Ok(committed) => match context.store.block(committed.height) {
                    Ok(Some(stored)) => events_for(&stored, &subscriptions),
                    _ => continue,
                },
                Err(RecvError::Lagged(_)) => {
                    let cancelled = subscriptions
                        .0
                        .iter()
                        .map(|s| envelope(s.id.clone(), Err(RpcError::internal(
                            "subscription was cancelled (reason: client is not pulling messages fast enough)",
                        ))))
                        .collect();
                    subscriptions.clear();
                    cancelled
                }
                Err(RecvError::Closed) => return,
            },
        };
        for message in outgoing {
            // A client that stops reading is dropped, as CometBFT drops it after its write wait.
            let sent = tokio::time::timeout(
                WRITE_WAIT,
                sink.send(Message::Text(message.to_string().into())),
            )
            .await;
            if !matches!(sent, Ok(Ok(()))) {
                return;
            }
        }
    }
}

/// Answers one JSON-RPC request read from the socket.
async fn request(
    context: &Arc<RpcContext>,
    text: &str,
    subscriptions: &mut Subscriptions,
) -> Value {
    let request: Value = match serde_json::from_str(text) {
        Ok(request) => request,
        Err(e) => {
            return envelope(
                json!(-1),
                Err(RpcError {
                    code: -32700,
                    message: "Parse error",
                    data: e.to_string(),
                }),
            )
        }
    };
    let id = request.get("id").cloned().unwrap_or(json!(-1));
    let query = || {
        request["params"]["query"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| RpcError::invalid_params("missing `query`"))
    };
    let outcome = match request.get("method").and_then(Value::as_str) {
        Some("subscribe") => query().and_then(|text| {
            let parsed: EventQuery =
                text.parse()
                    .map_err(|e: crate::solo::events::SearchError| {
                        RpcError::invalid_params(format!("failed to parse query: {e}"))
                    })?;
            // Only these two are published; a subscription to another would never hear.
            for condition in parsed.conditions.iter().filter(|c| c.key == "tm.event") {
                if !["NewBlock", "Tx"]
                    .iter()
                    .any(|kind| condition.accepts(kind))
                {
                    return Err(RpcError::invalid_params(
                        "this node publishes tm.event='NewBlock' and tm.event='Tx' only",
                    ));
                }
            }
            subscriptions.add(Subscription {
                id: id.clone(),
                text,
                query: parsed,
            })?;
            Ok(json!({}))
        }),
        Some("unsubscribe") => {
            query().and_then(|text| subscriptions.remove(&text).map(|_| json!({})))
        }
        Some("unsubscribe_all") => {
            if subscriptions.0.is_empty() {
                Err(RpcError::internal("subscription not found"))
            } else {
                subscriptions.clear();
                Ok(json!({}))
            }
        }
        _ => return call(context, request).await,
    };
    envelope(id, outcome)
}

/// The `NewBlock` and `Tx` events of `stored` that `subscriptions` asked for.
fn events_for(stored: &StoredBlock, subscriptions: &Subscriptions) -> Vec<Value> {
    let height = stored.block.header.height.to_string();
    let mut published = Vec::new();
    let mut block_events = attributes(&stored.results.events);
    block_events.insert("tm.event".into(), vec!["NewBlock".into()]);
    let mut new_block = None;
    for subscription in &subscriptions.0 {
        if !matches(&subscription.query, &block_events) {
            continue;
        }
        let data = new_block.get_or_insert_with(|| {
            json!({
                "type": "tendermint/event/NewBlock",
                "value": {
                    "block": stored.block,
                    "block_id": stored.id,
                    "result_finalize_block": {
                        "events": events_json(&stored.results.events),
                        "tx_results": stored.results.tx_results.iter().map(exec_result_json).collect::<Vec<_>>(),
                        "validator_updates": [],
                        "consensus_param_updates": null,
                        "app_hash": base64_encode(&stored.results.app_hash),
                    },
                },
            })
        });
        published.push(event(subscription, data.clone(), &block_events));
    }
    for (index, (tx, result)) in stored
        .block
        .data
        .iter()
        .zip(&stored.results.tx_results)
        .enumerate()
    {
        let mut tx_events = attributes(&result.events);
        tx_events.insert("tm.event".into(), vec!["Tx".into()]);
        tx_events.insert(
            "tx.hash".into(),
            vec![hex::encode_upper(tx_hash(tx).as_bytes())],
        );
        tx_events.insert("tx.height".into(), vec![height.clone()]);
        for subscription in &subscriptions.0 {
            if !matches(&subscription.query, &tx_events) {
                continue;
            }
            let data = json!({
                "type": "tendermint/event/Tx",
                "value": {
                    "TxResult": {
                        "height": height,
                        "index": index,
                        "tx": base64_encode(tx),
                        "result": exec_result_json(result),
                    },
                },
            });
            published.push(event(subscription, data, &tx_events));
        }
    }
    published
}

fn event(
    subscription: &Subscription,
    data: Value,
    events: &BTreeMap<String, Vec<String>>,
) -> Value {
    json!({
        "jsonrpc": "2.0",
        "id": subscription.id,
        "result": { "query": subscription.text, "data": data, "events": events },
    })
}

/// Every attribute of `events` as `type.key` → its values, in order.
fn attributes(events: &[tendermint_proto::v0_38::abci::Event]) -> BTreeMap<String, Vec<String>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for event in events {
        for attribute in &event.attributes {
            map.entry(format!("{}.{}", event.r#type, attribute.key))
                .or_default()
                .push(attribute.value.clone());
        }
    }
    map
}

/// Whether every condition of `query` holds for some value of its key.
fn matches(query: &EventQuery, events: &BTreeMap<String, Vec<String>>) -> bool {
    query.conditions.iter().all(|condition| {
        events
            .get(&condition.key)
            .is_some_and(|values| values.iter().any(|v| condition.accepts(v)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subscription_query_matches_any_value_of_its_key() {
        let mut events = BTreeMap::new();
        events.insert("tm.event".to_owned(), vec!["Tx".to_owned()]);
        events.insert(
            "transfer.recipient".to_owned(),
            vec!["nesa1fee".to_owned(), "nesa1bob".to_owned()],
        );
        events.insert("tx.height".to_owned(), vec!["12".to_owned()]);
        let query = |text: &str| text.parse::<EventQuery>().unwrap();
        assert!(matches(&query("tm.event='Tx'"), &events));
        assert!(matches(
            &query("tm.event='Tx' AND transfer.recipient='nesa1bob'"),
            &events
        ));
        assert!(matches(&query("tx.height>10"), &events));
        assert!(!matches(&query("tm.event='NewBlock'"), &events));
        assert!(!matches(
            &query("tm.event='Tx' AND message.sender EXISTS"),
            &events
        ));
    }

    #[test]
    fn a_connection_holds_at_most_five_subscriptions_and_no_duplicate() {
        let mut subscriptions = Subscriptions::default();
        let subscribe = |subscriptions: &mut Subscriptions, n: usize| {
            let text = format!("tm.event='Tx' AND tx.height>{n}");
            subscriptions.add(Subscription {
                id: json!(n),
                query: text.parse().unwrap(),
                text,
            })
        };
        for n in 0..MAX_SUBSCRIPTIONS_PER_CLIENT {
            subscribe(&mut subscriptions, n).unwrap();
        }
        assert!(subscribe(&mut subscriptions, 99).is_err(), "a sixth");
        subscriptions
            .remove("tm.event='Tx' AND tx.height>0")
            .unwrap();
        assert!(subscribe(&mut subscriptions, 1).is_err(), "a duplicate");
        assert!(subscriptions
            .remove("tm.event='Tx' AND tx.height>0")
            .is_err());
        subscribe(&mut subscriptions, 7).unwrap();
    }
}
