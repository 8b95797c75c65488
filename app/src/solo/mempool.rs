//! The solo node's mempool: transactions that passed CheckTx, in arrival order, deduplicated
//! by hash, bounded in count and bytes.

use std::collections::{HashSet, VecDeque};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tendermint_proto::v0_38::abci::ResponseCheckTx;

use crate::app::App;

/// Why a transaction was not admitted (CheckTx failures are reported in the response instead).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MempoolError {
    #[error("tx already exists in cache")]
    Duplicate,
    #[error("mempool is full: number of txs {count} (max: {max_count}), total txs bytes {bytes} (max: {max_bytes})")]
    Full {
        count: usize,
        max_count: usize,
        bytes: usize,
        max_bytes: usize,
    },
}

#[derive(Default)]
struct Pool {
    queue: VecDeque<([u8; 32], Vec<u8>)>,
    hashes: HashSet<[u8; 32]>,
    bytes: usize,
}

/// Pending transactions waiting for a block.
pub struct Mempool {
    pool: Mutex<Pool>,
    arrived: Condvar,
    max_count: usize,
    max_bytes: usize,
}

impl Mempool {
    /// An empty mempool with CometBFT's default limits (5,000 txs, 1 GiB).
    pub fn new() -> Self {
        Mempool {
            pool: Mutex::default(),
            arrived: Condvar::new(),
            max_count: 5000,
            max_bytes: 1 << 30,
        }
    }

    /// Runs CheckTx and admits the transaction when it passes. The pool stays locked during
    /// CheckTx so admission never interleaves with a commit and its recheck.
    pub fn submit(&self, app: &App, tx: Vec<u8>) -> Result<ResponseCheckTx, MempoolError> {
        let hash: [u8; 32] = Sha256::digest(&tx).into();
        let mut pool = self.pool.lock().expect("mempool lock");
        if pool.hashes.contains(&hash) {
            return Err(MempoolError::Duplicate);
        }
        if pool.queue.len() >= self.max_count || pool.bytes + tx.len() > self.max_bytes {
            return Err(MempoolError::Full {
                count: pool.queue.len(),
                max_count: self.max_count,
                bytes: pool.bytes,
                max_bytes: self.max_bytes,
            });
        }
        let response = app.check_tx(&tx);
        if response.code == 0 {
            pool.hashes.insert(hash);
            pool.bytes += tx.len();
            pool.queue.push_back((hash, tx));
            self.arrived.notify_all();
        }
        Ok(response)
    }

    /// Waits up to `timeout` for a transaction; true if any is pending.
    pub fn wait_for_txs(&self, timeout: Duration) -> bool {
        let pool = self.pool.lock().expect("mempool lock");
        if !pool.queue.is_empty() {
            return true;
        }
        let (pool, _) = self
            .arrived
            .wait_timeout(pool, timeout)
            .expect("mempool lock");
        !pool.queue.is_empty()
    }

    /// The transactions in arrival order, up to `max_bytes` in total, left in the pool: the
    /// proposal picks and orders from them, and what the block does not include stays for the
    /// next one (`commit_and_recheck` removes what was included).
    pub fn pending(&self, max_bytes: usize) -> Vec<Vec<u8>> {
        let pool = self.pool.lock().expect("mempool lock");
        let mut taken = vec![];
        let mut total = 0;
        for (_, tx) in &pool.queue {
            if total + tx.len() > max_bytes && !taken.is_empty() {
                break;
            }
            total += tx.len();
            taken.push(tx.clone());
        }
        taken
    }

    /// Runs `commit` with admission paused, removes the transactions the block included (by
    /// hash), then re-runs CheckTx on what is left against the new state and drops what became
    /// invalid — as CometBFT locks its mempool across Commit and recheck. Without the pause a
    /// transaction arriving between the two would be checked against a state missing the
    /// effects of the pending ones before it.
    pub fn commit_and_recheck<T>(
        &self,
        app: &App,
        included: &[[u8; 32]],
        commit: impl FnOnce() -> T,
    ) -> T {
        let mut pool = self.pool.lock().expect("mempool lock");
        let result = commit();
        let included: HashSet<&[u8; 32]> = included.iter().collect();
        let pending = std::mem::take(&mut *pool);
        for (hash, tx) in pending.queue {
            if included.contains(&hash) {
                continue;
            }
            if app.check_tx(&tx).code == 0 {
                pool.hashes.insert(hash);
                pool.bytes += tx.len();
                pool.queue.push_back((hash, tx));
            }
        }
        result
    }

    /// Number of pending transactions.
    pub fn len(&self) -> usize {
        self.pool.lock().expect("mempool lock").queue.len()
    }

    /// True when nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Default for Mempool {
    fn default() -> Self {
        Self::new()
    }
}
