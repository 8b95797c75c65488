//! The thin adapter between tendermint-abci's socket server and the application. Fatal errors
//! (storage failures, a block at an unexpected height) halt the node: continuing would let
//! this validator diverge from the others.

use std::sync::Arc;

use tendermint_abci::{Application, ServerBuilder};
use tendermint_proto::v0_38::abci::{
    RequestCheckTx, RequestFinalizeBlock, RequestInfo, RequestInitChain, RequestPrepareProposal,
    RequestProcessProposal, RequestQuery, ResponseCheckTx, ResponseCommit, ResponseFinalizeBlock,
    ResponseInfo, ResponseInitChain, ResponsePrepareProposal, ResponseProcessProposal,
    ResponseQuery,
};

use crate::app::{App, AppError};

/// Size of the socket read buffer: large enough for a block of maximum-size transactions.
const READ_BUFFER_BYTES: usize = 64 * 1024 * 1024;

/// The application as tendermint-abci sees it: cloned per connection, sharing one `App`.
#[derive(Clone)]
pub struct AbciApp(pub Arc<App>);

fn halt(step: &str, error: AppError) -> ! {
    tracing::error!(%error, "{step} failed; halting so this node cannot diverge");
    eprintln!("nesad: {step} failed: {error}");
    std::process::exit(1)
}

impl Application for AbciApp {
    fn info(&self, _request: RequestInfo) -> ResponseInfo {
        self.0.info().unwrap_or_else(|e| halt("Info", e))
    }

    fn init_chain(&self, request: RequestInitChain) -> ResponseInitChain {
        self.0
            .init_chain(request)
            .unwrap_or_else(|e| halt("InitChain", e))
    }

    fn query(&self, request: RequestQuery) -> ResponseQuery {
        self.0.query(request)
    }

    fn check_tx(&self, request: RequestCheckTx) -> ResponseCheckTx {
        self.0.check_tx(&request.tx)
    }

    fn commit(&self) -> ResponseCommit {
        match self.0.commit() {
            Ok(committed) => {
                tracing::info!(height = committed.height, app_hash = %hex::encode_upper(committed.app_hash), "committed");
                ResponseCommit { retain_height: 0 }
            }
            Err(e) => halt("Commit", e),
        }
    }

    fn prepare_proposal(&self, request: RequestPrepareProposal) -> ResponsePrepareProposal {
        self.0
            .prepare_proposal(request)
            .unwrap_or_else(|e| halt("PrepareProposal", e))
    }

    fn process_proposal(&self, request: RequestProcessProposal) -> ResponseProcessProposal {
        self.0
            .process_proposal(request)
            .unwrap_or_else(|e| halt("ProcessProposal", e))
    }

    fn finalize_block(&self, request: RequestFinalizeBlock) -> ResponseFinalizeBlock {
        self.0
            .finalize_block(request)
            .unwrap_or_else(|e| halt("FinalizeBlock", e))
    }
}

/// Serves the ABCI socket protocol on `address` (e.g. `127.0.0.1:26658`) until the process ends.
pub fn serve(app: Arc<App>, address: &str) -> anyhow::Result<()> {
    let server = ServerBuilder::new(READ_BUFFER_BYTES)
        .bind(address, AbciApp(app))
        .map_err(|e| anyhow::anyhow!("cannot listen for CometBFT on {address}: {e}"))?;
    tracing::info!(%address, "waiting for CometBFT on the ABCI socket");
    server
        .listen()
        .map_err(|e| anyhow::anyhow!("ABCI server stopped: {e}"))
}
