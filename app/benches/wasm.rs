//! Contract execution throughput: signed `MsgExecuteContract` transactions (a storage-touching
//! `increment` of the probe contract) per second through FinalizeBlock + Commit on one core,
//! against bank sends through the same path in the same run; and the cost of a contract's
//! first call after a restart (module loaded from the disk cache) versus a cached call.
//! Writes `$CARGO_TARGET_DIR/bench/wasm.md`.

mod support;

use std::time::{Duration, Instant};

use nesa_app::state::Storage;
use nesa_app::App;
use nesa_sdk::cosmrs::proto::cosmwasm::wasm::v1 as proto;
use nesa_sdk::cosmrs::Any;
use prost::Message;
use support::{block, fresh_app, genesis, senders, signed_round, Sender};

const EXECUTE_GAS: u64 = 400_000;

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

fn increment(sender: &Sender, contract: &str) -> Any {
    any(
        "/cosmwasm.wasm.v1.MsgExecuteContract",
        proto::MsgExecuteContract {
            sender: sender.address.to_string(),
            contract: contract.into(),
            msg: br#"{"increment":{}}"#.to_vec(),
            funds: vec![],
        },
    )
}

fn rate(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

fn main() {
    let count: usize = std::env::var("BENCH_SENDERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let rounds: u64 = std::env::var("BENCH_BLOCKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    let senders = senders(count);
    let (app, dir) = fresh_app("wasm", &genesis(&senders));

    // Upload and instantiate (sequence 0 and 1 of the first sender).
    let owner = &senders[0];
    let store = any(
        "/cosmwasm.wasm.v1.MsgStoreCode",
        proto::MsgStoreCode {
            sender: owner.address.to_string(),
            wasm_byte_code: probe_wasm(),
            instantiate_permission: None,
        },
    );
    let started = Instant::now();
    let upload = block(
        &app,
        1,
        &signed_round(&senders[..1], 0, 20_000_000, |_| store.clone()),
    );
    let upload_time = started.elapsed();
    assert_eq!(upload.tx_results[0].code, 0, "{}", upload.tx_results[0].log);
    let instantiate = any(
        "/cosmwasm.wasm.v1.MsgInstantiateContract",
        proto::MsgInstantiateContract {
            sender: owner.address.to_string(),
            admin: String::new(),
            code_id: 1,
            label: "bench".into(),
            msg: b"{}".to_vec(),
            funds: vec![],
        },
    );
    let result = block(
        &app,
        2,
        &signed_round(&senders[..1], 1, 2_000_000, |_| instantiate.clone()),
    );
    assert_eq!(result.tx_results[0].code, 0, "{}", result.tx_results[0].log);
    let contract = nesa_app::modules::wasm::classic_address(1, 1).to_string();

    // Steady state: every sender increments the counter once per block.
    let mut height = 2;
    let mut sequences = vec![0u64; senders.len()];
    sequences[0] = 2;
    let (mut elapsed, mut executed, mut gas_used) = (Duration::ZERO, 0usize, 0i64);
    for _ in 0..rounds {
        let txs: Vec<Vec<u8>> = senders
            .iter()
            .zip(&sequences)
            .map(|(sender, sequence)| {
                signed_round(std::slice::from_ref(sender), *sequence, EXECUTE_GAS, |s| {
                    increment(s, &contract)
                })
                .remove(0)
            })
            .collect();
        height += 1;
        let started = Instant::now();
        let response = block(&app, height, &txs);
        elapsed += started.elapsed();
        assert!(
            response.tx_results.iter().all(|r| r.code == 0),
            "{:?}",
            response.tx_results.iter().find(|r| r.code != 0)
        );
        executed += txs.len();
        gas_used += response.tx_results.iter().map(|r| r.gas_used).sum::<i64>();
        sequences.iter_mut().for_each(|s| *s += 1);
    }
    let execute_rate = rate(executed, elapsed);

    // Baseline in the same process: bank sends through the same path.
    let resequenced: Vec<Vec<u8>> = senders
        .iter()
        .zip(&sequences)
        .map(|(sender, sequence)| {
            let msg = nesa_sdk::msgs::bank_send(
                &sender.address,
                &senders[0].address,
                &nesa_sdk::Coins::from(nesa_sdk::Coin::unes(1)),
            )
            .unwrap();
            signed_round(std::slice::from_ref(sender), *sequence, 200_000, |_| {
                msg.clone()
            })
            .remove(0)
        })
        .collect();
    height += 1;
    let started = Instant::now();
    let response = block(&app, height, &resequenced);
    let send_rate = rate(resequenced.len(), started.elapsed());
    assert!(response.tx_results.iter().all(|r| r.code == 0));
    sequences.iter_mut().for_each(|s| *s += 1);

    // First call after a restart (memory cache empty, module loaded from the disk cache) versus
    // cached calls, measured on smart queries: the same instance path without block I/O.
    drop(app);
    let app = App::new(
        Storage::open(&dir.join("state.redb")).unwrap(),
        &dir.join("wasm"),
    )
    .unwrap();
    let count_query = || {
        let request = proto::QuerySmartContractStateRequest {
            address: contract.clone(),
            query_data: br#"{"count":{}}"#.to_vec(),
        };
        let started = Instant::now();
        let response = app.query(tendermint_proto::v0_38::abci::RequestQuery {
            path: "/cosmwasm.wasm.v1.Query/SmartContractState".into(),
            data: request.encode_to_vec().into(),
            height: 0,
            prove: false,
        });
        assert_eq!(response.code, 0, "{}", response.log);
        started.elapsed()
    };
    let first = count_query();
    let repeats = 50;
    let cached = (0..repeats).map(|_| count_query()).sum::<Duration>() / repeats;
    let stats = app.wasm().stats();

    let report = format!(
        "# Contract execution\n\n\
         Probe contract `increment` (one storage read + write, a custom event), {count} senders × {rounds} blocks, one core.\n\n\
         | path | tx/s | vs bank send |\n|---|---:|---:|\n\
         | bank `MsgSend` (baseline, same run) | {send_rate:.0} | 1.00 |\n\
         | `MsgExecuteContract` increment | {execute_rate:.0} | {:.2} |\n\n\
         Average gas per execute: {}.\n\n\
         | smart query `count` | time |\n|---|---:|\n\
         | cached module (memory), mean of 50 | {:.3} ms |\n\
         | first call after restart (module from disk cache) | {:.3} ms ({:.1}× cached) |\n\
         | upload (store + compile, {} KiB) | {:.0} ms |\n\n\
         Cache after restart: {stats:?}\n",
        execute_rate / send_rate,
        gas_used / executed as i64,
        cached.as_secs_f64() * 1e3,
        first.as_secs_f64() * 1e3,
        first.as_secs_f64() / cached.as_secs_f64(),
        probe_wasm().len() / 1024,
        upload_time.as_secs_f64() * 1e3,
    );
    println!("{report}");
    let out = std::path::PathBuf::from(
        std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into()),
    )
    .join("bench");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("wasm.md"), &report).unwrap();
    drop(app);
    let _ = std::fs::remove_dir_all(&dir);
}
