//! Shared benchmark fixtures: deterministic funded senders and signed transactions.

#![allow(dead_code)]

use nesa_app::state::Storage;
use nesa_app::App;
use nesa_genesis::{AppState, GenesisCoin};
use nesa_sdk::cosmrs::crypto::secp256k1::SigningKey;
use nesa_sdk::cosmrs::Any;
use nesa_sdk::{Address, AddressExt, Coin, Coins, TxBuilder};
use tendermint_proto::v0_38::abci::{
    RequestFinalizeBlock, RequestInitChain, ResponseFinalizeBlock,
};

pub const CHAIN_ID: &str = "nesa-bench-1";

pub struct Sender {
    pub key: SigningKey,
    pub address: Address,
    pub account_number: u64,
}

pub fn senders(count: usize) -> Vec<Sender> {
    (0..count)
        .map(|i| {
            let mut secret = [7u8; 32];
            secret[..8].copy_from_slice(&(i as u64 + 1).to_be_bytes());
            let key = SigningKey::from_slice(&secret).unwrap();
            let address = Address::from_public_key(&key.public_key()).unwrap();
            Sender {
                key,
                address,
                account_number: i as u64,
            }
        })
        .collect()
}

/// `per_sender` sends from every sender, ordered so each block has one tx per sender.
pub fn signed_sends(senders: &[Sender], per_sender: usize, chain_id: &str) -> Vec<Vec<u8>> {
    let recipient = senders[0].address;
    let mut txs = Vec::with_capacity(senders.len() * per_sender);
    for sequence in 0..per_sender as u64 {
        for sender in senders {
            let msg =
                nesa_sdk::msgs::bank_send(&sender.address, &recipient, &Coins::from(Coin::unes(1)))
                    .unwrap();
            let tx = TxBuilder::new(chain_id.parse().unwrap(), sender.account_number, sequence)
                .msgs(vec![msg])
                .sign(&sender.key)
                .unwrap();
            txs.push(tx.bytes);
        }
    }
    txs
}

pub fn genesis(senders: &[Sender]) -> AppState {
    let mut state = AppState::default();
    for sender in senders {
        state
            .add_balance(
                &sender.address.to_string(),
                GenesisCoin::parse_list("1000000000000unes").unwrap(),
            )
            .unwrap();
    }
    state
}

/// One transaction per sender carrying `msg(sender)`, at `sequence`, with `gas`.
pub fn signed_round(
    senders: &[Sender],
    sequence: u64,
    gas: u64,
    msg: impl Fn(&Sender) -> Any,
) -> Vec<Vec<u8>> {
    senders
        .iter()
        .map(|sender| {
            let fee = (gas as u128 * 25).div_ceil(1000);
            TxBuilder::new(CHAIN_ID.parse().unwrap(), sender.account_number, sequence)
                .msgs(vec![msg(sender)])
                .gas_limit(gas)
                .fee(Coins::from(Coin::unes(fee)))
                .sign(&sender.key)
                .unwrap()
                .bytes
        })
        .collect()
}

/// A fresh in-process app in a temporary directory, initialised with `app_state`.
pub fn fresh_app(name: &str, app_state: &AppState) -> (App, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("nesa-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let app = App::new(
        Storage::open(&dir.join("state.redb")).unwrap(),
        &dir.join("wasm"),
    )
    .unwrap();
    app.init_chain(RequestInitChain {
        chain_id: CHAIN_ID.into(),
        app_state_bytes: serde_json::to_vec(app_state).unwrap().into(),
        initial_height: 1,
        ..Default::default()
    })
    .unwrap();
    (app, dir)
}

/// Executes and commits one block.
pub fn block(app: &App, height: u64, txs: &[Vec<u8>]) -> ResponseFinalizeBlock {
    let response = app
        .finalize_block(RequestFinalizeBlock {
            txs: txs.iter().map(|tx| tx.clone().into()).collect(),
            height: height as i64,
            time: Some(tendermint_proto::google::protobuf::Timestamp {
                seconds: 1_700_000_000 + height as i64,
                nanos: 0,
            }),
            ..Default::default()
        })
        .unwrap();
    app.commit().unwrap();
    response
}
