//! `ChainClient`: queries, simulation, broadcast and confirmation over CometBFT JSON-RPC.

mod broadcast;
mod contracts;
mod error;
mod outcome;
mod queries;
mod sender;
mod watch;

use std::{sync::OnceLock, time::Duration};

use cosmrs::{
    proto::prost::Message,
    tendermint::{block::Height, chain},
};
use tendermint_rpc::{Client, HttpClient, HttpClientUrl};

pub use broadcast::{SendTxOptions, DEFAULT_TX_TIMEOUT};
pub(crate) use contracts::execute_msg;
pub use contracts::MarketContracts;
pub use error::chain_reason;
use error::rpc_reason;
pub use error::ClientError;
pub use outcome::{TxEvent, TxEventAttribute, TxOutcome};
pub use queries::AccountInfo;
pub use sender::TxSender;
pub use watch::{BlockWatcher, WatchedBlock};

/// How long one JSON-RPC request may take before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A connection to one Nesa node's CometBFT JSON-RPC endpoint.
#[derive(Debug)]
pub struct ChainClient {
    rpc: HttpClient,
    node: String,
    /// Fetched from `status` on first use; a node never changes its chain id.
    chain_id: OnceLock<chain::Id>,
}

impl ChainClient {
    /// A client for the node at `node` (e.g. `http://127.0.0.1:26657`); no request is made yet.
    pub fn new(node: &str) -> Result<Self, ClientError> {
        let invalid = |reason: String| ClientError::InvalidNode {
            node: node.to_owned(),
            reason,
        };
        let url: HttpClientUrl = node.parse().map_err(|e| invalid(rpc_reason(&e)))?;
        let rpc = HttpClient::builder(url)
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| invalid(rpc_reason(&e)))?;
        Ok(Self {
            rpc,
            node: node.to_owned(),
            chain_id: OnceLock::new(),
        })
    }

    /// Uses `chain_id` for signing instead of asking the node (e.g. from `--chain-id`).
    pub fn with_chain_id(self, chain_id: chain::Id) -> Self {
        let chain_id_cell = OnceLock::new();
        let _ = chain_id_cell.set(chain_id);
        Self {
            chain_id: chain_id_cell,
            ..self
        }
    }

    /// The node URL this client talks to.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The underlying RPC client, for endpoints this type does not wrap (blocks, tx_search).
    pub fn rpc(&self) -> &HttpClient {
        &self.rpc
    }

    /// The chain id, from `--chain-id` if given, else from the node's `status`.
    pub async fn chain_id(&self) -> Result<chain::Id, ClientError> {
        if let Some(chain_id) = self.chain_id.get() {
            return Ok(chain_id.clone());
        }
        let status = self.rpc.status().await.map_err(|e| self.rpc_error(e))?;
        let chain_id = status.node_info.network;
        let _ = self.chain_id.set(chain_id.clone());
        Ok(chain_id)
    }

    /// Latest block height the node has committed.
    pub async fn latest_height(&self) -> Result<Height, ClientError> {
        let status = self.rpc.status().await.map_err(|e| self.rpc_error(e))?;
        Ok(status.sync_info.latest_block_height)
    }

    /// Runs a protobuf ABCI query at the latest height (`path` like `/cosmos.bank.v1beta1.Query/Balance`).
    pub async fn abci_query<Request, Response>(
        &self,
        path: &str,
        request: &Request,
    ) -> Result<Response, ClientError>
    where
        Request: Message,
        Response: Message + Default,
    {
        let answer = self
            .rpc
            .abci_query(Some(path.to_owned()), request.encode_to_vec(), None, false)
            .await
            .map_err(|e| self.rpc_error(e))?;
        if answer.code.is_err() {
            return Err(ClientError::QueryFailed {
                path: path.to_owned(),
                code: answer.code.value(),
                log: answer.log,
            });
        }
        Response::decode(answer.value.as_slice()).map_err(|e| ClientError::Decode {
            what: "query response",
            reason: format!("{path}: {e}"),
        })
    }

    pub(crate) fn rpc_error(&self, cause: tendermint_rpc::Error) -> ClientError {
        ClientError::Rpc {
            node: self.node.clone(),
            cause: Box::new(cause),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_accepts_an_http_node_url_without_connecting() {
        let client = ChainClient::new(crate::DEFAULT_NODE).unwrap();
        assert_eq!(client.node(), "http://127.0.0.1:26657");
    }

    #[test]
    fn client_rejects_a_malformed_node_url() {
        assert!(matches!(
            ChainClient::new("not a url"),
            Err(ClientError::InvalidNode { .. })
        ));
    }

    #[tokio::test]
    async fn chain_id_given_up_front_is_used_without_asking_the_node() {
        // Port 9 (discard) has no node: any request would fail, so success proves no request was made.
        let client = ChainClient::new("http://127.0.0.1:9")
            .unwrap()
            .with_chain_id("nesa-test-1".parse().unwrap());
        assert_eq!(client.chain_id().await.unwrap().as_str(), "nesa-test-1");
    }
}
