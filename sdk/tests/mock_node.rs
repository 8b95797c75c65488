//! `ChainClient` against a scripted JSON-RPC node: the wire formats and the send flow
//! (account → simulate → sign → broadcast → poll) without a real chain.

use std::{
    future::Future,
    sync::{Arc, Mutex},
    time::Duration,
};

use base64::{engine::general_purpose::STANDARD as BASE64, Engine};
use nesa_sdk::{
    cosmrs::{
        proto::{
            cosmos::{
                auth::v1beta1::{BaseAccount, QueryAccountResponse},
                base::abci::v1beta1::GasInfo,
                tx::v1beta1::SimulateResponse,
            },
            prost::{Message, Name},
        },
        Any, Tx,
    },
    keys::signing_key_from_mnemonic,
    msgs::bank_send,
    Address, AddressExt, ChainClient, ClientError, Coin, CoinExt, GasSetting, SendTxOptions,
};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

const TEST_MNEMONIC: &str =
    "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about";

/// What the scripted node answers: `Ok(result)` or `Err(json-rpc error object)`.
type Script = Arc<dyn Fn(&str, &Value) -> Result<Value, Value> + Send + Sync>;

/// Serves JSON-RPC on a free local port, answering every request with `script`; returns the URL.
async fn spawn_node(script: Script) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let script = script.clone();
            tokio::spawn(async move {
                let request = read_http_body(&mut socket).await;
                let request: Value = serde_json::from_slice(&request).unwrap();
                let method = request["method"].as_str().unwrap_or_default();
                let mut reply = json!({ "jsonrpc": "2.0", "id": request["id"] });
                match script(method, &request["params"]) {
                    Ok(result) => reply["result"] = result,
                    Err(error) => reply["error"] = error,
                }
                let body = reply.to_string();
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                socket.write_all(response.as_bytes()).await.unwrap();
            });
        }
    });
    url
}

async fn read_http_body(socket: &mut tokio::net::TcpStream) -> Vec<u8> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let read = socket.read(&mut chunk).await.unwrap();
        buffer.extend_from_slice(&chunk[..read]);
        let text = String::from_utf8_lossy(&buffer);
        if let Some(header_end) = text.find("\r\n\r\n") {
            let content_length = text[..header_end]
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if buffer.len() >= header_end + 4 + content_length {
                return buffer[header_end + 4..header_end + 4 + content_length].to_vec();
            }
        }
        if read == 0 {
            return Vec::new();
        }
    }
}

fn abci_ok(value: impl Message) -> Value {
    json!({ "response": {
        "code": 0, "log": "", "info": "", "index": "0", "key": null,
        "value": BASE64.encode(value.encode_to_vec()), "proofOps": null, "height": "7", "codespace": ""
    }})
}

fn abci_error(code: u32, log: &str) -> Value {
    json!({ "response": {
        "code": code, "log": log, "info": "", "index": "0", "key": null,
        "value": null, "proofOps": null, "height": "7", "codespace": "sdk"
    }})
}

fn account_response(account_number: u64, sequence: u64) -> Value {
    let account = BaseAccount {
        address: String::new(),
        pub_key: None,
        account_number,
        sequence,
    };
    abci_ok(QueryAccountResponse {
        account: Some(Any {
            type_url: BaseAccount::type_url(),
            value: account.encode_to_vec(),
        }),
    })
}

fn broadcast_reply(tx_base64: &str, code: u32, log: &str) -> Value {
    let hash = hex::encode_upper(Sha256::digest(BASE64.decode(tx_base64).unwrap()));
    json!({ "code": code, "data": "", "log": log, "codespace": if code == 0 { "" } else { "sdk" }, "hash": hash })
}

fn tx_reply(tx_base64: &str, code: u32, log: &str) -> Value {
    let hash = hex::encode_upper(Sha256::digest(BASE64.decode(tx_base64).unwrap()));
    json!({
        "hash": hash, "height": "12", "index": 0, "tx": tx_base64,
        "tx_result": {
            "code": code, "data": null, "log": log, "info": "", "codespace": "",
            "gas_wanted": "104000", "gas_used": "81234",
            "events": [{ "type": "transfer", "attributes": [
                { "key": "amount", "value": "1000unes", "index": true }
            ]}]
        }
    })
}

async fn with_timeout<F: Future>(future: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(20), future)
        .await
        .expect("test took too long")
}

fn send_msg() -> (nesa_sdk::cosmrs::crypto::secp256k1::SigningKey, Any) {
    let key = signing_key_from_mnemonic(TEST_MNEMONIC).unwrap();
    let from = Address::from_public_key(&key.public_key()).unwrap();
    let send = bank_send(
        &from,
        &Address::from_bytes([3; 20]),
        &Coin::unes(1_000).into(),
    )
    .unwrap();
    (key, send)
}

#[tokio::test]
async fn send_tx_simulates_signs_broadcasts_and_waits_for_the_block() {
    let broadcast_tx = Arc::new(Mutex::new(None::<String>));
    let tx_lookups = Arc::new(Mutex::new(0u32));
    let (seen, lookups) = (broadcast_tx.clone(), tx_lookups.clone());
    let script: Script = Arc::new(move |method, params| match method {
        "abci_query" => match params["path"].as_str().unwrap() {
            "/cosmos.auth.v1beta1.Query/Account" => Ok(account_response(3, 1)),
            "/cosmos.tx.v1beta1.Service/Simulate" => Ok(abci_ok(SimulateResponse {
                gas_info: Some(GasInfo {
                    gas_wanted: 200_000,
                    gas_used: 80_000,
                }),
                result: None,
            })),
            other => panic!("unexpected query {other}"),
        },
        "broadcast_tx_sync" => {
            let tx = params["tx"].as_str().unwrap().to_owned();
            *seen.lock().unwrap() = Some(tx.clone());
            Ok(broadcast_reply(&tx, 0, ""))
        }
        "tx" => {
            let mut count = lookups.lock().unwrap();
            *count += 1;
            // The first lookup happens before the block: CometBFT answers "not found".
            if *count == 1 {
                return Err(
                    json!({ "code": -32603, "message": "Internal error", "data": "tx (ABC) not found" }),
                );
            }
            Ok(tx_reply(seen.lock().unwrap().as_deref().unwrap(), 0, ""))
        }
        other => panic!("unexpected method {other}"),
    });
    let client = ChainClient::new(&spawn_node(script).await)
        .unwrap()
        .with_chain_id("nesa-test-1".parse().unwrap());
    let (key, send) = send_msg();
    let options = SendTxOptions {
        gas: GasSetting::Auto,
        memo: "mock".into(),
        ..SendTxOptions::default()
    };

    let outcome = with_timeout(client.send_tx(&key, vec![send], &options))
        .await
        .unwrap();

    assert_eq!(
        (outcome.height, outcome.gas_used, outcome.gas_wanted),
        (12, 81_234, 104_000)
    );
    assert_eq!(
        outcome.event_attribute("transfer", "amount"),
        Some("1000unes")
    );
    assert_eq!(*tx_lookups.lock().unwrap(), 2);
    let sent = BASE64
        .decode(broadcast_tx.lock().unwrap().as_deref().unwrap())
        .unwrap();
    let tx = Tx::from_bytes(&sent).unwrap();
    assert_eq!(tx.auth_info.fee.gas_limit, 104_000, "80000 simulated × 1.3");
    assert_eq!(
        tx.auth_info.fee.amount,
        vec![Coin::unes(2_600).to_cosmrs()],
        "ceil(104000 × 0.025)"
    );
    assert_eq!(tx.auth_info.signer_infos[0].sequence, 1);
    assert_eq!(tx.body.memo, "mock");
}

/// A fixed gas limit: no simulation, so the node's answer to the broadcast itself is tested.
fn fixed_gas() -> SendTxOptions {
    SendTxOptions {
        gas: GasSetting::Fixed(200_000),
        ..SendTxOptions::default()
    }
}

#[tokio::test]
async fn a_contract_call_the_contract_refuses_in_simulation_is_never_broadcast() {
    let broadcasts = Arc::new(Mutex::new(0u32));
    let counted = broadcasts.clone();
    let script: Script = Arc::new(move |method, params| {
        match method {
        "abci_query" => match params["path"].as_str().unwrap() {
            "/cosmos.auth.v1beta1.Query/Account" => Ok(account_response(3, 1)),
            "/cosmos.tx.v1beta1.Service/Simulate" => Ok(abci_error(
                18,
                "rpc error: code = InvalidArgument desc = failed to execute message; message index: 0: query 9 does not exist: execute wasm contract failed: invalid request",
            )),
            other => panic!("unexpected query {other}"),
        },
        "broadcast_tx_sync" => {
            *counted.lock().unwrap() += 1;
            Ok(broadcast_reply(params["tx"].as_str().unwrap(), 0, ""))
        }
        other => panic!("unexpected method {other}"),
    }
    });
    let client = ChainClient::new(&spawn_node(script).await)
        .unwrap()
        .with_chain_id("nesa-test-1".parse().unwrap());
    let (key, _) = send_msg();
    let settle = json!({ "settle": { "query_id": 9 } });

    // Even with a fixed gas limit the call is simulated first.
    let error = with_timeout(client.execute_contract(
        &key,
        &nesa_sdk::ContractAddress::from_bytes([7; 32]),
        &settle,
        &Default::default(),
        &fixed_gas(),
    ))
    .await
    .unwrap_err();

    assert!(
        matches!(&error, ClientError::Simulation { reason } if reason == "query 9 does not exist"),
        "{error}"
    );
    assert_eq!(
        error.to_string(),
        "the chain refused the transaction when simulating it, so nothing was sent: query 9 does not exist"
    );
    assert_eq!(*broadcasts.lock().unwrap(), 0, "nothing broadcast");
}

#[tokio::test]
async fn check_tx_rejection_reports_the_chain_log() {
    let script: Script = Arc::new(|method, params| match method {
        "abci_query" => Ok(account_response(0, 0)),
        "broadcast_tx_sync" => Ok(broadcast_reply(
            params["tx"].as_str().unwrap(),
            5,
            "spendable balance 0unes is smaller than 1000unes: insufficient funds",
        )),
        other => panic!("unexpected method {other}"),
    });
    let client = ChainClient::new(&spawn_node(script).await)
        .unwrap()
        .with_chain_id("nesa-test-1".parse().unwrap());
    let (key, send) = send_msg();

    let error = with_timeout(client.send_tx(&key, vec![send], &fixed_gas()))
        .await
        .unwrap_err();

    assert!(
        matches!(error, ClientError::CheckTx { code: 5, .. }),
        "{error}"
    );
    assert!(error.to_string().contains("insufficient funds"), "{error}");
}

#[tokio::test]
async fn failed_execution_in_a_block_is_an_error_with_the_log() {
    let script: Script = Arc::new(|method, params| match method {
        "abci_query" => Ok(account_response(0, 0)),
        "broadcast_tx_sync" => Ok(broadcast_reply(params["tx"].as_str().unwrap(), 0, "")),
        "tx" => Ok(tx_reply(&BASE64.encode(b"anything"), 11, "out of gas")),
        other => panic!("unexpected method {other}"),
    });
    let client = ChainClient::new(&spawn_node(script).await)
        .unwrap()
        .with_chain_id("nesa-test-1".parse().unwrap());
    let (key, send) = send_msg();

    let error = with_timeout(client.send_tx(&key, vec![send], &fixed_gas()))
        .await
        .unwrap_err();

    assert!(
        matches!(&error, ClientError::DeliverTx(outcome) if outcome.code == 11),
        "{error}"
    );
    assert!(error.to_string().contains("out of gas"), "{error}");
}

#[tokio::test]
async fn unknown_account_is_reported_as_needing_funds() {
    let script: Script = Arc::new(|_, _| Ok(abci_error(22, "key not found")));
    let client = ChainClient::new(&spawn_node(script).await).unwrap();
    let address = Address::from_bytes([5; 20]);

    let error = with_timeout(client.account(&address)).await.unwrap_err();

    assert_eq!(
        error.to_string(),
        format!("account {address} not found on chain: it must receive funds first")
    );
}

#[tokio::test]
async fn balances_decode_from_protobuf_query_responses() {
    use nesa_sdk::cosmrs::proto::cosmos::{
        bank::v1beta1::{QueryAllBalancesResponse, QueryBalanceResponse},
        base::v1beta1::Coin as ProtoCoin,
    };
    let script: Script = Arc::new(|_, params| {
        let coin = |amount: &str, denom: &str| ProtoCoin {
            amount: amount.into(),
            denom: denom.into(),
        };
        match params["path"].as_str().unwrap() {
            "/cosmos.bank.v1beta1.Query/Balance" => Ok(abci_ok(QueryBalanceResponse {
                balance: Some(coin("42", "unes")),
            })),
            "/cosmos.bank.v1beta1.Query/AllBalances" => Ok(abci_ok(QueryAllBalancesResponse {
                balances: vec![coin("42", "unes"), coin("7", "foo")],
                pagination: None,
            })),
            other => panic!("unexpected query {other}"),
        }
    });
    let client = ChainClient::new(&spawn_node(script).await).unwrap();
    let address = Address::from_bytes([5; 20]);

    assert_eq!(
        with_timeout(client.balance(&address, "unes"))
            .await
            .unwrap(),
        Coin::unes(42)
    );
    let all = with_timeout(client.all_balances(&address)).await.unwrap();
    assert_eq!(all.to_string(), "7foo,42unes");
}
