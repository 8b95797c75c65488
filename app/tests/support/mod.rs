//! An in-process chain for tests: the real application, store and solo block producer, driven
//! block by block without sockets (Penumbra's mock-consensus idea).

#![allow(dead_code)]

pub mod market;

use std::path::PathBuf;
use std::sync::Arc;

use nesa_app::solo::blockstore::{BlockStore, StoredBlock};
use nesa_app::solo::mempool::Mempool;
use nesa_app::solo::producer::Producer;
use nesa_app::solo::validator::ValidatorKey;
use nesa_app::state::Storage;
use nesa_app::App;
use nesa_genesis::{AppState, GenesisCoin};
use nesa_sdk::cosmrs::crypto::secp256k1::SigningKey;
use nesa_sdk::cosmrs::proto::cosmos::bank::v1beta1::{QueryBalanceRequest, QueryBalanceResponse};
use nesa_sdk::cosmrs::Any;
use nesa_sdk::{Address, AddressExt, Coins, TxBuilder};
use prost::Message;
use tendermint_proto::v0_38::abci::{
    ExecTxResult, RequestFinalizeBlock, RequestInitChain, RequestQuery, ResponseCheckTx,
};

pub const CHAIN_ID: &str = "nesa-test-1";

/// A funded test account with a deterministic key.
pub struct TestAccount {
    pub key: SigningKey,
    pub address: Address,
    pub account_number: u64,
    pub sequence: u64,
}

impl TestAccount {
    /// The account whose secret key is `[seed; 32]` (deterministic, so app hashes can be pinned).
    pub fn from_seed(seed: u8, account_number: u64) -> Self {
        let key = SigningKey::from_slice(&[seed; 32]).expect("valid secret key");
        let address = Address::from_public_key(&key.public_key()).expect("secp256k1 address");
        TestAccount {
            key,
            address,
            account_number,
            sequence: 0,
        }
    }

    /// A signed transaction with default gas and fee, advancing the local sequence.
    pub fn sign(&mut self, msgs: Vec<Any>) -> Vec<u8> {
        let tx = self
            .builder()
            .msgs(msgs)
            .sign(&self.key)
            .expect("signs")
            .bytes;
        self.sequence += 1;
        tx
    }

    /// A send of `amount` unes to `to` with an explicit gas limit and fee (sequence unchanged).
    pub fn sign_send_with_gas(
        &self,
        to: &Address,
        amount: u128,
        gas_limit: u64,
        fee: u128,
    ) -> Vec<u8> {
        self.builder()
            .msgs(vec![self.send_msg(to, amount)])
            .gas_limit(gas_limit)
            .fee(Coins::from(nesa_sdk::Coin::unes(fee)))
            .sign(&self.key)
            .expect("signs")
            .bytes
    }

    /// A signed transaction with `gas` and the matching minimum fee, advancing the sequence.
    /// Gas 0 and no fee is what clients send to simulate without a limit.
    pub fn sign_with_gas(&mut self, msgs: Vec<Any>, gas: u64) -> Vec<u8> {
        let fee = match (gas as u128 * 25).div_ceil(1000) {
            0 => Coins::default(),
            fee => Coins::from(nesa_sdk::Coin::unes(fee)),
        };
        let tx = self
            .builder()
            .msgs(msgs)
            .gas_limit(gas)
            .fee(fee)
            .sign(&self.key)
            .expect("signs")
            .bytes;
        self.sequence += 1;
        tx
    }

    /// A builder preset with this account's number and sequence on the test chain.
    pub fn builder(&self) -> TxBuilder {
        TxBuilder::new(
            CHAIN_ID.parse().expect("chain id"),
            self.account_number,
            self.sequence,
        )
    }

    /// A `MsgSend` of `amount` unes to `to`.
    pub fn send_msg(&self, to: &Address, amount: u128) -> Any {
        nesa_sdk::msgs::bank_send(
            &self.address,
            to,
            &Coins::from(nesa_sdk::Coin::unes(amount)),
        )
        .expect("valid msg")
    }
}

/// A chain running in this process.
pub struct TestChain {
    pub dir: PathBuf,
    pub app: Arc<App>,
    pub store: BlockStore,
    pub mempool: Arc<Mempool>,
    pub producer: Producer,
    keep_dir: bool,
}

impl TestChain {
    /// A fresh chain where each `(address, unes)` is funded at genesis, in that order (so the
    /// i-th account gets account number i).
    pub fn new(name: &str, funded: &[(&Address, u128)]) -> Self {
        let dir = std::env::temp_dir().join(format!("nesa-app-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut app_state = AppState::default();
        for (address, amount) in funded {
            app_state
                .add_balance(
                    &address.to_string(),
                    GenesisCoin::parse_list(&format!("{amount}unes")).unwrap(),
                )
                .unwrap();
        }
        Self::with_app_state(dir, app_state)
    }

    /// A fresh chain starting from `app_state`.
    pub fn from_app_state(name: &str, app_state: AppState) -> Self {
        let dir = std::env::temp_dir().join(format!("nesa-app-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Self::with_app_state(dir, app_state)
    }

    fn with_app_state(dir: PathBuf, app_state: AppState) -> Self {
        let chain = Self::open(dir);
        chain
            .app
            .init_chain(RequestInitChain {
                chain_id: CHAIN_ID.into(),
                app_state_bytes: serde_json::to_vec(&app_state).unwrap().into(),
                initial_height: 1,
                ..Default::default()
            })
            .unwrap();
        chain.produce();
        chain
    }

    /// Reopens the chain stored in `dir` (as after a restart).
    pub fn open(dir: PathBuf) -> Self {
        let storage = Storage::open(&dir.join("state.redb")).unwrap();
        let app = Arc::new(App::new(storage.clone(), &dir.join("wasm")).unwrap());
        let store = BlockStore::new(storage).unwrap();
        let mempool = Arc::new(Mempool::new());
        let key_path = dir.join("validator.json");
        if !key_path.exists() {
            ValidatorKey::generate().save(&key_path).unwrap();
        }
        let key = ValidatorKey::load(&key_path).unwrap();
        let (committed, _) = tokio::sync::broadcast::channel(16);
        let producer = Producer::new(
            app.clone(),
            store.clone(),
            mempool.clone(),
            key,
            CHAIN_ID.parse().unwrap(),
            10,
            committed,
        )
        .with_clock(nesa_app::solo::producer::one_second_blocks);
        TestChain {
            dir,
            app,
            store,
            mempool,
            producer,
            keep_dir: false,
        }
    }

    /// CheckTx through the mempool (what `broadcast_tx_sync` reports).
    pub fn submit(&self, tx: &[u8]) -> ResponseCheckTx {
        self.mempool
            .submit(&self.app, tx.to_vec())
            .expect("admitted to the mempool queue")
    }

    /// Produces one block from the mempool.
    pub fn produce(&self) -> StoredBlock {
        let txs = self.mempool.pending(usize::MAX);
        self.producer.produce(txs).unwrap()
    }

    /// Executes `txs` as the next block exactly as given (as a block from another proposer
    /// would arrive), commits it, and returns each tx's result.
    pub fn finalize(&self, txs: Vec<Vec<u8>>) -> Vec<ExecTxResult> {
        let height = self.height() + 1;
        let response = self
            .app
            .finalize_block(RequestFinalizeBlock {
                txs: txs.into_iter().map(Into::into).collect(),
                height: height as i64,
                ..Default::default()
            })
            .unwrap();
        self.app.commit().unwrap();
        response.tx_results
    }

    /// The last committed height.
    pub fn height(&self) -> u64 {
        self.app
            .storage()
            .committed()
            .unwrap()
            .map_or(0, |c| c.height)
    }

    /// The app hash after the last committed block.
    pub fn app_hash(&self) -> [u8; 32] {
        self.app.storage().committed().unwrap().unwrap().app_hash
    }

    /// A balance through the ABCI query path clients use.
    pub fn balance(&self, address: &impl std::fmt::Display) -> u128 {
        let request = QueryBalanceRequest {
            address: address.to_string(),
            denom: "unes".into(),
        };
        let response = self.app.query(RequestQuery {
            path: "/cosmos.bank.v1beta1.Query/Balance".into(),
            data: request.encode_to_vec().into(),
            height: 0,
            prove: false,
        });
        assert_eq!(response.code, 0, "{}", response.log);
        let decoded = QueryBalanceResponse::decode(response.value.as_ref()).unwrap();
        decoded.balance.unwrap().amount.parse().unwrap()
    }

    /// Gas used by `tx` according to the Simulate query clients call.
    pub fn simulate(&self, tx: &[u8]) -> u64 {
        self.try_simulate(tx).unwrap_or_else(|log| panic!("{log}"))
    }

    /// The Simulate query's gas estimate, or its error log.
    pub fn try_simulate(&self, tx: &[u8]) -> Result<u64, String> {
        use nesa_sdk::cosmrs::proto::cosmos::tx::v1beta1::{SimulateRequest, SimulateResponse};
        #[allow(deprecated)]
        let request = SimulateRequest {
            tx: None,
            tx_bytes: tx.to_vec(),
        };
        let response = self.app.query(RequestQuery {
            path: "/cosmos.tx.v1beta1.Service/Simulate".into(),
            data: request.encode_to_vec().into(),
            height: 0,
            prove: false,
        });
        if response.code != 0 {
            return Err(response.log);
        }
        Ok(SimulateResponse::decode(response.value.as_ref())
            .unwrap()
            .gas_info
            .unwrap()
            .gas_used)
    }

    /// A contract's answer to a smart query, as JSON.
    pub fn query_smart(
        &self,
        contract: &str,
        query: serde_json::Value,
    ) -> Result<serde_json::Value, String> {
        use nesa_sdk::cosmrs::proto::cosmwasm::wasm::v1::{
            QuerySmartContractStateRequest, QuerySmartContractStateResponse,
        };
        let request = QuerySmartContractStateRequest {
            address: contract.into(),
            query_data: serde_json::to_vec(&query).unwrap(),
        };
        let response = self.app.query(RequestQuery {
            path: "/cosmwasm.wasm.v1.Query/SmartContractState".into(),
            data: request.encode_to_vec().into(),
            height: 0,
            prove: false,
        });
        if response.code != 0 {
            return Err(response.log);
        }
        let data = QuerySmartContractStateResponse::decode(response.value.as_ref())
            .unwrap()
            .data;
        Ok(serde_json::from_slice(&data).unwrap())
    }

    /// Submits `tx`, produces a block and returns its result (CheckTx failures as a result too).
    pub fn run(&self, tx: &[u8]) -> ExecTxResult {
        let check = self.submit(tx);
        if check.code != 0 {
            return ExecTxResult {
                code: check.code,
                log: check.log,
                codespace: check.codespace,
                ..Default::default()
            };
        }
        let block = self.produce();
        let index = block
            .block
            .data
            .iter()
            .position(|t| t == tx)
            .expect("the block includes the tx");
        block.results.tx_results[index].clone()
    }

    /// An account's sequence (0 if it does not exist).
    pub fn sequence(&self, address: &Address) -> u64 {
        use nesa_sdk::cosmrs::proto::cosmos::auth::v1beta1::{
            BaseAccount, QueryAccountRequest, QueryAccountResponse,
        };
        let response = self.app.query(RequestQuery {
            path: "/cosmos.auth.v1beta1.Query/Account".into(),
            data: QueryAccountRequest {
                address: address.to_string(),
            }
            .encode_to_vec()
            .into(),
            height: 0,
            prove: false,
        });
        if response.code != 0 {
            return 0;
        }
        let any = QueryAccountResponse::decode(response.value.as_ref())
            .unwrap()
            .account
            .unwrap();
        BaseAccount::decode(any.value.as_slice()).unwrap().sequence
    }
}

impl TestChain {
    /// Closes the chain (as a stopped node) and hands back its directory for `open`.
    pub fn close(mut self) -> PathBuf {
        self.keep_dir = true;
        self.dir.clone()
    }
}

impl Drop for TestChain {
    fn drop(&mut self) {
        if !self.keep_dir && !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

impl TestChain {
    /// Submits every tx (each must pass CheckTx), produces one block holding all of them and
    /// returns their results in the order given.
    pub fn run_all(&self, txs: &[Vec<u8>]) -> Vec<ExecTxResult> {
        for tx in txs {
            let check = self.submit(tx);
            assert_eq!(check.code, 0, "CheckTx: {}", check.log);
        }
        let block = self.produce();
        txs.iter()
            .map(|tx| {
                let index = block
                    .block
                    .data
                    .iter()
                    .position(|t| t == tx)
                    .expect("the block includes every tx");
                block.results.tx_results[index].clone()
            })
            .collect()
    }

    /// Produces empty blocks until the last committed height is at least `height` (so the
    /// next transaction executes at `height + 1` or later).
    pub fn advance_to(&self, height: u64) {
        while self.height() < height {
            self.produce();
        }
    }
}
