//! The application: the state machine CometBFT (or the solo block producer, or a test) drives.
//! It knows nothing of sockets; `abci` adapts it to tendermint-abci and `solo` calls it directly.

use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use tendermint_proto::v0_38::abci::{
    ExecTxResult, RequestFinalizeBlock, RequestInitChain, RequestPrepareProposal,
    RequestProcessProposal, RequestQuery, ResponseCheckTx, ResponseFinalizeBlock, ResponseInfo,
    ResponseInitChain, ResponsePrepareProposal, ResponseProcessProposal, ResponseQuery,
};

pub use crate::genesis::ChainConfig;
use crate::genesis::{apply_genesis, last_block_time, GenesisApplyError, HEIGHT_KEY, TIME_KEY};
use crate::modules::wasm::{self, WasmError, WasmVm};
use crate::query::QueryRouter;
use crate::state::{
    BlockWriter, Committed, Overlay, PendingCommit, Snapshot, StateError, StateWrite, Storage,
};
use crate::tx::{
    decode_tx, execute_tx, DecodeMode, ExecMode, SignatureCache, TxEnv, TxError, TxOutcome,
};

/// Errors that stop block processing. The node must halt on them rather than diverge.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Genesis(#[from] GenesisApplyError),
    #[error("the chain has no genesis yet: run InitChain (nesad init, then start)")]
    NotInitialised,
    #[error("block {got} does not follow the last committed height {committed}")]
    UnexpectedHeight { got: u64, committed: u64 },
    #[error("commit without a finalized block")]
    NothingToCommit,
    #[error("genesis chain id `{genesis}` does not match the stored chain id `{stored}`")]
    ChainIdMismatch { genesis: String, stored: String },
    #[error("app_state is not valid JSON: {0}")]
    AppStateJson(String),
    #[error(transparent)]
    Wasm(#[from] WasmError),
}

struct Consensus {
    pending: Option<PendingCommit>,
}

/// The Nesa application.
pub struct App {
    storage: Storage,
    /// Set once, by genesis; read without locking so CheckTx and queries never wait for a block.
    config: OnceLock<ChainConfig>,
    consensus: Mutex<Consensus>,
    /// The contract VM and its module cache.
    wasm: Arc<WasmVm>,
    /// Signatures verified at CheckTx or in a proposal, not verified again.
    signatures: SignatureCache,
    /// The mempool's view: committed state plus the effects of admitted transactions.
    mempool: Mutex<Option<Overlay<Snapshot>>>,
}

impl App {
    /// Opens the application over `storage`, with the contract module cache in `wasm_dir`,
    /// loading the chain config if genesis ran and making every stored code runnable.
    pub fn new(storage: Storage, wasm_dir: &Path) -> Result<Self, AppError> {
        // A database whose commit record cannot be read stops the node here, with its reason.
        storage.committed()?;
        let config = OnceLock::new();
        let snapshot = storage.snapshot()?;
        if let Some(loaded) = ChainConfig::load(&snapshot)? {
            let _ = config.set(loaded);
        }
        let wasm = WasmVm::open(wasm_dir)?;
        wasm::restore_cache(&snapshot, &wasm)?;
        Ok(App {
            storage,
            wasm,
            config,
            consensus: Mutex::new(Consensus { pending: None }),
            signatures: SignatureCache::default(),
            mempool: Mutex::new(None),
        })
    }

    /// The underlying storage (read-only use: RPC, proofs).
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// The chain config, once genesis has run.
    pub fn config(&self) -> Option<ChainConfig> {
        self.config.get().cloned()
    }

    /// The last committed block height (0 before the first block).
    pub fn last_block(&self) -> Result<Option<Committed>, AppError> {
        let committed = self.storage.committed()?;
        let initial = self.config().map_or(1, |c| c.initial_height);
        Ok(committed.filter(|c| c.height >= initial))
    }

    /// ABCI Info: the last committed height and app hash, so CometBFT replays what is missing.
    pub fn info(&self) -> Result<ResponseInfo, AppError> {
        let last = self.last_block()?;
        Ok(ResponseInfo {
            data: "nesad".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            app_version: 1,
            last_block_height: last.map_or(0, |c| c.height as i64),
            last_block_app_hash: last.map(|c| c.app_hash.to_vec()).unwrap_or_default().into(),
        })
    }

    /// ABCI InitChain: applies `app_state` and commits it as the version before the first block.
    /// Running it again (CometBFT's handshake after a crash before block 1) returns the same hash.
    pub fn init_chain(&self, request: RequestInitChain) -> Result<ResponseInitChain, AppError> {
        let _consensus = self.consensus.lock().expect("consensus lock");
        if let (Some(config), Some(committed)) = (self.config.get(), self.storage.committed()?) {
            if config.chain_id != request.chain_id {
                return Err(AppError::ChainIdMismatch {
                    genesis: request.chain_id,
                    stored: config.chain_id.clone(),
                });
            }
            return Ok(ResponseInitChain {
                app_hash: committed.app_hash.to_vec().into(),
                ..Default::default()
            });
        }
        let app_state: nesa_genesis::AppState = if request.app_state_bytes.is_empty() {
            Default::default()
        } else {
            serde_json::from_slice(&request.app_state_bytes)
                .map_err(|e| AppError::AppStateJson(e.to_string()))?
        };
        let initial_height = request.initial_height.max(1) as u64;
        let snapshot = self.storage.snapshot()?;
        let mut state = Overlay::new(&snapshot);
        let genesis_time = request.time.map(timestamp_nanos).unwrap_or(0);
        let params = apply_genesis(
            &mut state,
            &self.wasm,
            &request.chain_id,
            initial_height,
            genesis_time,
            &app_state,
        )?;
        let pending = self
            .storage
            .prepare(initial_height - 1, state.into_changes())?;
        let committed = self.storage.commit(pending, |_| Ok(()))?;
        let _ = self.config.set(ChainConfig {
            chain_id: request.chain_id,
            params,
            initial_height,
        });
        *self.mempool.lock().expect("mempool lock") = None;
        tracing::info!(app_hash = %hex::encode(committed.app_hash), "genesis applied");
        Ok(ResponseInitChain {
            app_hash: committed.app_hash.to_vec().into(),
            ..Default::default()
        })
    }

    /// ABCI CheckTx: stateless checks and the ante checks against the mempool's view.
    pub fn check_tx(&self, raw: &[u8]) -> ResponseCheckTx {
        let Some(config) = self.config() else {
            return check_response(
                Err(TxError::Internal("the chain has no genesis yet".into())),
                0,
                0,
            );
        };
        let tx = match decode_tx(raw, &config.params, DecodeMode::Signed) {
            Ok(tx) => tx,
            Err(e) => return check_response(Err(e), 0, 0),
        };
        let mut mempool = self.mempool.lock().expect("mempool lock");
        if mempool.is_none() {
            match self.storage.snapshot() {
                Ok(snapshot) => *mempool = Some(Overlay::new(snapshot)),
                Err(e) => return check_response(Err(TxError::Internal(e.to_string())), 0, 0),
            }
        }
        let view = mempool.as_mut().expect("just set");
        let height = self
            .storage
            .committed()
            .ok()
            .flatten()
            .map_or(1, |c| c.height + 1);
        let env = self.tx_env(&config, height, 0, ExecMode::Check);
        let outcome = execute_tx(&*view, &tx, &env);
        if let (Ok(()), Some(changes)) = (&outcome.result, &outcome.changes) {
            view.apply(changes.clone());
        }
        check_response(outcome.result, outcome.gas_wanted, outcome.gas_used)
    }

    /// ABCI PrepareProposal: orders the transactions by fee per gas (each signer's in their
    /// original order, so sequences stay valid), then keeps those that pass the ante checks in
    /// sequence and fit `max_tx_bytes` and the block gas limit; the rest wait or are dropped.
    pub fn prepare_proposal(
        &self,
        request: RequestPrepareProposal,
    ) -> Result<ResponsePrepareProposal, AppError> {
        let config = self.config().ok_or(AppError::NotInitialised)?;
        let snapshot = self.storage.snapshot()?;
        let mut scratch = Overlay::new(&snapshot);
        let env = self.tx_env(&config, request.height as u64, 0, ExecMode::Check);
        let decoded = request.txs.into_iter().filter_map(|raw| {
            let tx = decode_tx(&raw, &config.params, DecodeMode::Signed).ok()?;
            Some((raw, tx))
        });
        let mut bytes = 0i64;
        let mut gas = 0u64;
        let mut txs = vec![];
        for (raw, tx) in by_priority(decoded.collect(), &config.params.fee_denom) {
            if bytes + raw.len() as i64 > request.max_tx_bytes
                || gas.saturating_add(tx.gas_limit) > nesa_genesis::BLOCK_MAX_GAS
            {
                continue;
            }
            let outcome = execute_tx(&scratch, &tx, &env);
            halt_on_fault(&snapshot)?;
            if let (Ok(()), Some(changes)) = (outcome.result, outcome.changes) {
                scratch.apply(changes);
                bytes += raw.len() as i64;
                gas += tx.gas_limit;
                txs.push(raw);
            }
        }
        Ok(ResponsePrepareProposal { txs })
    }

    /// ABCI ProcessProposal: rejects a block containing any transaction that fails decoding or
    /// the ante checks in sequence.
    pub fn process_proposal(
        &self,
        request: RequestProcessProposal,
    ) -> Result<ResponseProcessProposal, AppError> {
        use tendermint_proto::v0_38::abci::response_process_proposal::ProposalStatus;
        let config = self.config().ok_or(AppError::NotInitialised)?;
        let snapshot = self.storage.snapshot()?;
        let mut scratch = Overlay::new(&snapshot);
        let env = self.tx_env(&config, request.height as u64, 0, ExecMode::Check);
        let mut gas = 0u64;
        for raw in &request.txs {
            let valid = match decode_tx(raw, &config.params, DecodeMode::Signed) {
                Ok(tx) if gas.saturating_add(tx.gas_limit) > nesa_genesis::BLOCK_MAX_GAS => false,
                Ok(tx) => match execute_tx(&scratch, &tx, &env) {
                    TxOutcome {
                        result: Ok(()),
                        changes: Some(changes),
                        ..
                    } => {
                        scratch.apply(changes);
                        gas += tx.gas_limit;
                        true
                    }
                    _ => false,
                },
                Err(_) => false,
            };
            halt_on_fault(&snapshot)?;
            if !valid {
                tracing::warn!(
                    height = request.height,
                    "rejecting proposal with an invalid transaction"
                );
                return Ok(ResponseProcessProposal {
                    status: ProposalStatus::Reject as i32,
                });
            }
        }
        Ok(ResponseProcessProposal {
            status: ProposalStatus::Accept as i32,
        })
    }

    /// ABCI FinalizeBlock: executes every transaction and returns the new app hash. The state
    /// is written only by the following Commit.
    pub fn finalize_block(
        &self,
        request: RequestFinalizeBlock,
    ) -> Result<ResponseFinalizeBlock, AppError> {
        let mut consensus = self.consensus.lock().expect("consensus lock");
        let config = self.config().ok_or(AppError::NotInitialised)?;
        let height = request.height as u64;
        let committed = self.storage.committed()?.map_or(0, |c| c.height);
        if height != committed + 1 {
            return Err(AppError::UnexpectedHeight {
                got: height,
                committed,
            });
        }
        let snapshot = self.storage.snapshot()?;
        let mut block = Overlay::new(&snapshot);
        let time = request
            .time
            .map(timestamp_nanos)
            .unwrap_or_else(|| last_block_time(&snapshot));
        block.put(HEIGHT_KEY.to_vec(), height.to_be_bytes().to_vec())?;
        block.put(TIME_KEY.to_vec(), time.to_be_bytes().to_vec())?;
        let base_env = self.tx_env(&config, height, time, ExecMode::Deliver);
        let mut tx_results = Vec::with_capacity(request.txs.len());
        for (index, raw) in request.txs.iter().enumerate() {
            let env = TxEnv {
                tx_index: index as u32,
                ..base_env
            };
            let result = match decode_tx(raw, &config.params, DecodeMode::Signed) {
                Ok(tx) => {
                    let outcome = execute_tx(&block, &tx, &env);
                    halt_on_fault(&snapshot)?;
                    let (result, changes) = exec_result(outcome);
                    if let Some(changes) = changes {
                        block.apply(changes);
                    }
                    result
                }
                Err(e) => error_result(&e, 0, 0),
            };
            tx_results.push(result);
        }
        halt_on_fault(&snapshot)?;
        let pending = self.storage.prepare(height, block.into_changes())?;
        let app_hash = pending.app_hash;
        consensus.pending = Some(pending);
        Ok(ResponseFinalizeBlock {
            tx_results,
            app_hash: app_hash.to_vec().into(),
            ..Default::default()
        })
    }

    /// ABCI Commit: persists the finalized block in one atomic write.
    pub fn commit(&self) -> Result<Committed, AppError> {
        self.commit_with(|_| Ok(()))
    }

    /// Commit, writing `extra` tables (the solo block store) in the same atomic transaction.
    pub fn commit_with(
        &self,
        extra: impl FnOnce(BlockWriter) -> Result<(), StateError>,
    ) -> Result<Committed, AppError> {
        let mut consensus = self.consensus.lock().expect("consensus lock");
        let pending = consensus.pending.take().ok_or(AppError::NothingToCommit)?;
        let committed = self.storage.commit(pending, extra)?;
        *self.mempool.lock().expect("mempool lock") = None;
        Ok(committed)
    }

    fn tx_env<'a>(
        &'a self,
        config: &'a ChainConfig,
        height: u64,
        time_nanos: u64,
        mode: ExecMode,
    ) -> TxEnv<'a> {
        config.tx_env(&self.wasm, &self.signatures, height, time_nanos, mode)
    }

    /// The contract VM.
    pub fn wasm(&self) -> &Arc<WasmVm> {
        &self.wasm
    }

    /// ABCI Query: every path, through the one query router.
    pub fn query(&self, request: RequestQuery) -> ResponseQuery {
        QueryRouter {
            storage: &self.storage,
            config: self.config.get(),
            wasm: &self.wasm,
            signatures: &self.signatures,
            mempool: &self.mempool,
        }
        .query(&request)
    }
}

fn timestamp_nanos(time: tendermint_proto::google::protobuf::Timestamp) -> u64 {
    (time.seconds.max(0) as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(time.nanos.max(0) as u64)
}

/// A read of the committed state failed while executing a block: whatever the transaction's
/// result says, it was computed from a partial view, so the node stops instead of committing.
fn halt_on_fault(snapshot: &Snapshot) -> Result<(), AppError> {
    match snapshot.fault() {
        Some(fault) => Err(AppError::State(StateError::Storage(format!(
            "reading the committed state failed during block execution ({fault}); the node stops rather than commit a block computed from a partial view"
        )))),
        None => Ok(()),
    }
}

/// `txs` highest fee per gas first; ties and each signer's own transactions keep their order.
fn by_priority(
    txs: Vec<(prost::bytes::Bytes, crate::tx::CheckedTx)>,
    fee_denom: &str,
) -> Vec<(prost::bytes::Bytes, crate::tx::CheckedTx)> {
    use std::collections::{BTreeMap, BinaryHeap, VecDeque};
    let mut queues: BTreeMap<nesa_types::Address, VecDeque<(usize, _, _)>> = BTreeMap::new();
    for (index, (raw, tx)) in txs.into_iter().enumerate() {
        queues
            .entry(tx.signer)
            .or_default()
            .push_back((index, raw, tx));
    }
    // One heap entry per signer: its next transaction's priority, then arrival order.
    let mut heads = BinaryHeap::new();
    for (signer, queue) in &queues {
        if let Some((index, _, tx)) = queue.front() {
            heads.push((tx.priority(fee_denom), std::cmp::Reverse(*index), *signer));
        }
    }
    let mut ordered = Vec::new();
    while let Some((_, _, signer)) = heads.pop() {
        let Some(queue) = queues.get_mut(&signer) else {
            continue;
        };
        let Some((_, raw, tx)) = queue.pop_front() else {
            continue;
        };
        if let Some((index, _, next)) = queue.front() {
            heads.push((next.priority(fee_denom), std::cmp::Reverse(*index), signer));
        }
        ordered.push((raw, tx));
    }
    ordered
}

fn check_response(result: Result<(), TxError>, gas_wanted: u64, gas_used: u64) -> ResponseCheckTx {
    match result {
        Ok(()) => ResponseCheckTx {
            gas_wanted: gas_wanted as i64,
            gas_used: gas_used as i64,
            ..Default::default()
        },
        Err(e) => ResponseCheckTx {
            code: e.code(),
            log: e.to_string(),
            codespace: e.codespace().into(),
            gas_wanted: gas_wanted as i64,
            gas_used: gas_used as i64,
            ..Default::default()
        },
    }
}

fn error_result(error: &TxError, gas_wanted: u64, gas_used: u64) -> ExecTxResult {
    ExecTxResult {
        code: error.code(),
        log: error.to_string(),
        codespace: error.codespace().into(),
        gas_wanted: gas_wanted as i64,
        gas_used: gas_used as i64,
        ..Default::default()
    }
}

fn exec_result(outcome: TxOutcome) -> (ExecTxResult, Option<crate::state::Changes>) {
    let result = match &outcome.result {
        Ok(()) => ExecTxResult {
            data: outcome.data.into(),
            gas_wanted: outcome.gas_wanted as i64,
            gas_used: outcome.gas_used as i64,
            events: outcome.events,
            ..Default::default()
        },
        Err(e) => {
            let mut result = error_result(e, outcome.gas_wanted, outcome.gas_used);
            // Fee and sequence events stay visible when the messages failed.
            if outcome.changes.is_some() {
                result.events = outcome.events;
            }
            result
        }
    };
    (result, outcome.changes)
}
