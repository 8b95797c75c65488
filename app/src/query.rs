//! The one query router: every ABCI query path — the gRPC-style paths CosmJS and Keplr call
//! (protobuf in, protobuf out) served by the module that owns them, `store/<module>/key` raw
//! reads with ICS-23 proofs, the Simulate gas estimate and the market contracts' addresses —
//! at the latest or a historical height.

use std::sync::{Arc, Mutex};

use cosmrs::proto::cosmos::base::abci::v1beta1::{GasInfo, Result as SdkResult};
use cosmrs::proto::cosmos::tx::v1beta1::{SimulateRequest, SimulateResponse};
use nesa_types::MARKET_CONTRACTS_PATH;
use prost::Message;
use tendermint_proto::v0_38::abci::{RequestQuery, ResponseQuery};
use tendermint_proto::v0_38::crypto::{ProofOp, ProofOps};

pub use crate::modules::QueryError;

use crate::genesis::{last_block_time, ChainConfig, MARKET_CONTRACTS_KEY};
use crate::modules::wasm::{self, CallSite, WasmVm};
use crate::modules::{auth, bank};
use crate::state::{Overlay, Snapshot, StateRead, Storage};
use crate::tx::{decode_tx, execute_tx, DecodeMode, ExecMode, SignatureCache, CODESPACE};

/// The proof-op type of JMT ICS-23 proofs in `abci_query` responses.
pub const PROOF_OP_TYPE: &str = "ics23:jmt";
/// Path of the gas-estimation query.
pub const SIMULATE_PATH: &str = "/cosmos.tx.v1beta1.Service/Simulate";

/// A protobuf query handler over a state view.
type Handler<S> = fn(&S, &[u8]) -> Result<Vec<u8>, QueryError>;

/// Routes a bank or auth gRPC-style query path to its module; `None` if neither serves it.
fn module_route<S: StateRead>(path: &str) -> Option<Handler<S>> {
    Some(match path {
        "/cosmos.auth.v1beta1.Query/Account" => auth::query::account_query::<S>,
        "/cosmos.bank.v1beta1.Query/Balance" => bank::query::balance_query::<S>,
        "/cosmos.bank.v1beta1.Query/AllBalances" => bank::query::all_balances_query::<S>,
        "/cosmos.bank.v1beta1.Query/SupplyOf" => bank::query::supply_of_query::<S>,
        "/cosmos.bank.v1beta1.Query/TotalSupply" => bank::query::total_supply_query::<S>,
        _ => return None,
    })
}

/// The raw-store prefix of a module for `store/<module>/key` queries.
fn module_prefix(module: &str) -> Option<&'static [u8]> {
    match module {
        "auth" => Some(auth::keys::PREFIX),
        "bank" => Some(bank::keys::PREFIX),
        _ => None,
    }
}

/// What the router reads: committed state, the chain config and the contract VM.
pub struct QueryRouter<'a> {
    /// Committed state, latest and historical.
    pub storage: &'a Storage,
    /// The chain config; `None` before genesis.
    pub config: Option<&'a ChainConfig>,
    /// The contract VM, for smart queries and simulations.
    pub wasm: &'a Arc<WasmVm>,
    /// The node's verified-signature cache (simulations never consult it).
    pub signatures: &'a SignatureCache,
    /// The writes of the transactions admitted to the mempool since the last commit:
    /// simulations run on top of them, as the Cosmos SDK simulates against its check state,
    /// so a client can simulate its next transaction while the previous one waits for a block.
    pub mempool: &'a Mutex<Option<Overlay<Snapshot>>>,
}

impl QueryRouter<'_> {
    /// Answers an ABCI query; failures carry the SDK's codes (codespace `sdk`).
    pub fn query(&self, request: &RequestQuery) -> ResponseQuery {
        match self.try_query(request) {
            Ok(response) => response,
            Err(e) => ResponseQuery {
                code: e.code(),
                log: e.to_string(),
                codespace: CODESPACE.into(),
                height: request.height,
                ..Default::default()
            },
        }
    }

    fn config(&self) -> Result<&ChainConfig, QueryError> {
        self.config
            .ok_or_else(|| QueryError::InvalidRequest("the chain has no genesis yet".into()))
    }

    fn try_query(&self, request: &RequestQuery) -> Result<ResponseQuery, QueryError> {
        let latest = self.storage.committed()?.map_or(0, |c| c.height);
        let height = match request.height {
            0 => latest,
            h if h < 0 => return Err(QueryError::InvalidHeight(format!("height {h} is negative"))),
            h => h as u64,
        };
        let answer = |value: Vec<u8>, height: u64| ResponseQuery {
            value: value.into(),
            height: height as i64,
            ..Default::default()
        };
        if request.path == SIMULATE_PATH {
            return Ok(answer(self.simulate(&request.data)?, latest));
        }
        if let Some(rest) = request.path.strip_prefix("store/") {
            return self.store_query(request, rest, height);
        }
        if request.path == MARKET_CONTRACTS_PATH {
            let value = self
                .storage
                .at(height)?
                .get(MARKET_CONTRACTS_KEY)?
                .ok_or_else(|| {
                    QueryError::NotFound("this chain has no genesis market contracts".into())
                })?;
            return Ok(answer(value, height));
        }
        if wasm::query::serves(&request.path) {
            let config = self.config()?;
            let value = if height == latest {
                let snapshot = self.storage.snapshot()?;
                let site = query_site(config, height, last_block_time(&snapshot));
                wasm::query::answer(&request.path, &snapshot, self.wasm, &site, &request.data)?
            } else {
                let past = self.storage.at(height)?;
                let site = query_site(config, height, last_block_time(&past));
                wasm::query::answer(&request.path, &past, self.wasm, &site, &request.data)?
            };
            return Ok(answer(value, height));
        }
        let unknown = || QueryError::UnknownPath(request.path.clone());
        let value = if height == latest {
            let handler = module_route(&request.path).ok_or_else(unknown)?;
            handler(&self.storage.snapshot()?, &request.data)?
        } else {
            let handler = module_route(&request.path).ok_or_else(unknown)?;
            handler(&self.storage.at(height)?, &request.data)?
        };
        Ok(answer(value, height))
    }

    /// `store/<module>/key`: the raw value under the module's prefix, with a proof if asked.
    fn store_query(
        &self,
        request: &RequestQuery,
        rest: &str,
        height: u64,
    ) -> Result<ResponseQuery, QueryError> {
        let unknown = || QueryError::UnknownPath(request.path.clone());
        let module = rest.strip_suffix("/key").ok_or_else(unknown)?;
        let prefix = module_prefix(module).ok_or_else(unknown)?;
        let key = [prefix, request.data.as_ref()].concat();
        let (value, proof_ops) = if request.prove {
            let (value, proof) = self.storage.get_with_proof(&key, height)?;
            let op = ProofOp {
                r#type: PROOF_OP_TYPE.into(),
                key: key.clone(),
                data: proof.encode_to_vec(),
            };
            (value, Some(ProofOps { ops: vec![op] }))
        } else {
            (self.storage.get_at(&key, height)?, None)
        };
        Ok(ResponseQuery {
            key: key.into(),
            value: value.unwrap_or_default().into(),
            proof_ops,
            height: height as i64,
            ..Default::default()
        })
    }

    /// Estimates gas by executing the (possibly unsigned) transaction against the latest state
    /// plus the mempool's admitted transactions.
    fn simulate(&self, request: &[u8]) -> Result<Vec<u8>, QueryError> {
        let config = self.config()?;
        let request = SimulateRequest::decode(request)?;
        if request.tx_bytes.is_empty() {
            return Err(QueryError::InvalidRequest(
                "empty txBytes is not allowed".into(),
            ));
        }
        let tx = decode_tx(&request.tx_bytes, &config.params, DecodeMode::Simulate)
            .map_err(|e| QueryError::InvalidRequest(e.to_string()))?;
        let snapshot = self.storage.snapshot()?;
        let height = self.storage.committed()?.map_or(1, |c| c.height + 1);
        let time = last_block_time(&snapshot);
        let mut view = Overlay::new(snapshot);
        if let Some(admitted) = self.mempool.lock().expect("mempool lock").as_ref() {
            view.apply(admitted.changes().clone());
        }
        let env = config.tx_env(self.wasm, self.signatures, height, time, ExecMode::Simulate);
        let outcome = execute_tx(&view, &tx, &env);
        if let Err(e) = outcome.result {
            return Err(QueryError::InvalidRequest(e.to_string()));
        }
        #[allow(deprecated)]
        let msg_responses =
            cosmrs::proto::cosmos::base::abci::v1beta1::TxMsgData::decode(outcome.data.as_slice())
                .map(|d| d.msg_responses)
                .unwrap_or_default();
        #[allow(deprecated)]
        let response = SimulateResponse {
            gas_info: Some(GasInfo {
                gas_wanted: outcome.gas_wanted,
                gas_used: outcome.gas_used,
            }),
            result: Some(SdkResult {
                data: outcome.data,
                log: String::new(),
                // The SDK's `Result.events` are CometBFT 0.38 events, the type the tx produced.
                events: outcome.events,
                msg_responses,
            }),
        };
        Ok(response.encode_to_vec())
    }
}

/// The block a query's contract calls see.
fn query_site(config: &ChainConfig, height: u64, time_nanos: u64) -> CallSite {
    CallSite {
        block: cosmwasm_std::BlockInfo {
            height,
            time: cosmwasm_std::Timestamp::from_nanos(time_nanos),
            chain_id: config.chain_id.clone(),
        },
        tx_index: None,
        depth: 0,
        simulation: false,
    }
}
