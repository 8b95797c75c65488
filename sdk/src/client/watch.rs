//! Following the chain block by block: the one event watcher the node runner, the relayer and
//! the CLI share. It reads `block_results`, so it works the same against a solo node and a
//! CometBFT node, and it resumes from any height after a restart.

use std::time::Duration;

use cosmrs::tendermint::block::Height;
use tendermint_rpc::Client;

use super::{ChainClient, ClientError, TxEvent};

/// How often to ask for a block that is not there yet.
const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// How many times to ask again for a block's results CometBFT has not stored yet (10 s).
const RESULTS_RETRIES: u32 = 50;

/// CometBFT's answer for the results of a block it announced but has not finished storing.
fn results_not_stored_yet(error: &tendermint_rpc::Error) -> bool {
    error
        .to_string()
        .contains("could not find results for height")
}

/// The events of one committed block.
#[derive(Clone, Debug)]
pub struct WatchedBlock {
    pub height: u64,
    /// Events of successful transactions, in block order (failed txs emit nothing that counts).
    pub tx_events: Vec<TxEvent>,
    /// Events emitted outside transactions (FinalizeBlock).
    pub block_events: Vec<TxEvent>,
}

impl WatchedBlock {
    /// Events of type `kind` (e.g. `wasm-query_assigned`) from this block's successful txs.
    pub fn events_of<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a TxEvent> + 'a {
        self.tx_events
            .iter()
            .chain(&self.block_events)
            .filter(move |e| e.kind == kind)
    }
}

impl TxEvent {
    /// The value of attribute `key`, if present.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|a| a.key == key)
            .map(|a| a.value.as_str())
    }
}

/// Yields committed blocks in order, starting from a given height.
pub struct BlockWatcher<'c> {
    client: &'c ChainClient,
    next: u64,
}

impl<'c> BlockWatcher<'c> {
    /// Watches from `height` (inclusive).
    pub fn from_height(client: &'c ChainClient, height: u64) -> Self {
        BlockWatcher {
            client,
            next: height.max(1),
        }
    }

    /// Watches from the block after the latest committed one.
    pub async fn from_latest(client: &'c ChainClient) -> Result<BlockWatcher<'c>, ClientError> {
        let latest = client.latest_height().await?.value();
        Ok(Self::from_height(client, latest + 1))
    }

    /// The next height this watcher will yield.
    pub fn next_height(&self) -> u64 {
        self.next
    }

    /// Waits for and returns the next block (`None` once `deadline` passes without it).
    pub async fn next_block(
        &mut self,
        deadline: Option<std::time::Instant>,
    ) -> Result<Option<WatchedBlock>, ClientError> {
        loop {
            let latest = self.client.latest_height().await?.value();
            if latest >= self.next {
                break;
            }
            if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
                return Ok(None);
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        let height = Height::try_from(self.next).map_err(|e| ClientError::Decode {
            what: "height",
            reason: e.to_string(),
        })?;
        let mut attempts = 0;
        let results = loop {
            match self.client.rpc().block_results(height).await {
                Ok(results) => break results,
                // CometBFT reports a height in `status` a moment before it has stored that
                // block's results; ask again rather than fail.
                Err(e) if results_not_stored_yet(&e) && attempts < RESULTS_RETRIES => {
                    attempts += 1;
                    tokio::time::sleep(POLL_INTERVAL).await;
                }
                Err(e) => return Err(self.client.rpc_error(e)),
            }
        };
        let tx_events = results
            .txs_results
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.code.is_ok())
            .flat_map(|r| r.events.into_iter().map(TxEvent::from))
            .collect();
        let block_events = results
            .finalize_block_events
            .into_iter()
            .map(TxEvent::from)
            .collect();
        let block = WatchedBlock {
            height: self.next,
            tx_events,
            block_events,
        };
        self.next += 1;
        Ok(Some(block))
    }
}

#[cfg(test)]
mod tests {
    use tendermint_rpc::response_error::{Code, ResponseError};

    use super::*;

    fn internal(message: &str) -> tendermint_rpc::Error {
        tendermint_rpc::Error::response(ResponseError::new(
            Code::InternalError,
            Some(message.to_string()),
        ))
    }

    #[test]
    fn results_cometbft_has_not_stored_yet_are_asked_again_and_other_errors_are_not() {
        assert!(results_not_stored_yet(&internal(
            "could not find results for height #22"
        )));
        assert!(!results_not_stored_yet(&internal(
            "height 30 must be less than or equal to the current blockchain height 29"
        )));
    }
}
