//! `nesad start` (CometBFT mode) driven through its ABCI socket without CometBFT: the real
//! binary on a loopback port, and tendermint-abci's client speaking the length-prefixed
//! protobuf protocol CometBFT speaks — Info, InitChain, FinalizeBlock with a signed transfer,
//! Commit, Info again and a balance Query.

mod support;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nesa_genesis::{AppState, GenesisCoin};
use nesa_sdk::cosmrs::proto::cosmos::bank::v1beta1::{QueryBalanceRequest, QueryBalanceResponse};
use nesa_sdk::Address;
use prost::Message;
use support::{TestAccount, CHAIN_ID};
use tendermint_abci::{Client, ClientBuilder};
use tendermint_proto::google::protobuf::Timestamp;
use tendermint_proto::v0_38::abci::{
    RequestFinalizeBlock, RequestInfo, RequestInitChain, RequestQuery,
};

const NESAD: &str = env!("CARGO_BIN_EXE_nesad");
const GENESIS_BALANCE: u128 = 1_000_000_000;
/// How long `nesad` may take to open its state and listen.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// A `nesad start` child process, killed when dropped.
struct Nesad(Child);

impl Drop for Nesad {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port()
}

/// Starts `nesad start` over `home` listening for ABCI on `address`, and connects to it.
fn start_nesad(home: &Path, address: &str) -> (Nesad, Client) {
    let child = Command::new(NESAD)
        .arg("--home")
        .arg(home)
        .args(["start", "--abci", &format!("tcp://{address}")])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("nesad starts");
    let mut nesad = Nesad(child);
    let started = Instant::now();
    loop {
        if let Ok(client) = ClientBuilder::default().connect(address) {
            return (nesad, client);
        }
        if let Ok(Some(status)) = nesad.0.try_wait() {
            panic!("nesad exited before listening: {status}");
        }
        assert!(
            started.elapsed() < STARTUP_TIMEOUT,
            "nesad did not listen on {address} within {STARTUP_TIMEOUT:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn balance(client: &mut Client, address: &Address) -> u128 {
    let request = QueryBalanceRequest {
        address: address.to_string(),
        denom: "unes".into(),
    };
    let response = client
        .query(RequestQuery {
            path: "/cosmos.bank.v1beta1.Query/Balance".into(),
            data: request.encode_to_vec().into(),
            height: 0,
            prove: false,
        })
        .expect("query answered");
    assert_eq!(response.code, 0, "{}", response.log);
    let coin = QueryBalanceResponse::decode(response.value.as_ref())
        .expect("balance response")
        .balance
        .expect("a balance");
    coin.amount.parse().expect("decimal amount")
}

#[test]
fn nesad_serves_a_block_with_a_transfer_over_its_abci_socket() {
    let home = std::env::temp_dir().join(format!(
        "nesa-abci-socket-{}-{}",
        std::process::id(),
        free_port()
    ));
    let _ = std::fs::remove_dir_all(&home);
    std::fs::create_dir_all(&home).unwrap();
    let address = format!("127.0.0.1:{}", free_port());
    let (_nesad, mut client) = start_nesad(&home, &address);

    let info = client.info(RequestInfo::default()).expect("info");
    assert_eq!(info.last_block_height, 0, "a fresh node has no blocks");

    let mut alice = TestAccount::from_seed(1, 0);
    let bob = TestAccount::from_seed(2, 1).address;
    let mut app_state = AppState::default();
    app_state
        .add_balance(
            &alice.address.to_string(),
            GenesisCoin::parse_list(&format!("{GENESIS_BALANCE}unes")).unwrap(),
        )
        .unwrap();
    let genesis = client
        .init_chain(RequestInitChain {
            time: Some(Timestamp {
                seconds: 1_700_000_000,
                nanos: 0,
            }),
            chain_id: CHAIN_ID.into(),
            app_state_bytes: serde_json::to_vec(&app_state).unwrap().into(),
            initial_height: 1,
            ..Default::default()
        })
        .expect("init chain");
    assert_eq!(
        genesis.app_hash.len(),
        32,
        "InitChain returns the genesis app hash"
    );

    let send = alice.sign(vec![alice.send_msg(&bob, 1_234)]);
    let block = client
        .finalize_block(RequestFinalizeBlock {
            txs: vec![send.into()],
            height: 1,
            time: Some(Timestamp {
                seconds: 1_700_000_001,
                nanos: 0,
            }),
            ..Default::default()
        })
        .expect("finalize block");
    assert_eq!(block.tx_results.len(), 1);
    assert_eq!(block.tx_results[0].code, 0, "{}", block.tx_results[0].log);
    assert_eq!(
        block.app_hash.len(),
        32,
        "FinalizeBlock returns the app hash"
    );
    assert_ne!(
        block.app_hash, genesis.app_hash,
        "the block changes the app hash"
    );
    client.commit().expect("commit");

    let info = client.info(RequestInfo::default()).expect("info");
    assert_eq!(
        info.last_block_height, 1,
        "Info reports the committed height"
    );
    assert_eq!(
        info.last_block_app_hash, block.app_hash,
        "Info reports the app hash FinalizeBlock returned"
    );
    assert_eq!(
        balance(&mut client, &bob),
        1_234,
        "the query sees the transfer"
    );

    drop(client);
    drop(_nesad);
    let _ = std::fs::remove_dir_all(&home);
}
