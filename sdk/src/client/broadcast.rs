//! Sending transactions: sign with fresh account state, broadcast, wait for the block.

use std::time::{Duration, Instant};

use cosmrs::{crypto::secp256k1::SigningKey, tendermint::Hash, Any};
use tendermint_rpc::Client;

use super::{ChainClient, ClientError, TxOutcome};
use crate::{
    address::{Address, AddressExt},
    fee::{adjusted_gas_limit, FeeSetting, GasSetting, DEFAULT_GAS_LIMIT},
    tx::{SignedTx, TxBuilder},
};

/// How often `wait_for_tx` asks the node whether the transaction is in a block yet.
const TX_POLL_INTERVAL: Duration = Duration::from_millis(200);
/// Default time to wait for inclusion: many blocks even on a slow multi-validator network.
pub const DEFAULT_TX_TIMEOUT: Duration = Duration::from_secs(60);

/// How `send_tx` picks gas, fee and memo, and how long it waits for inclusion.
#[derive(Clone, Debug)]
pub struct SendTxOptions {
    /// Fixed gas limit or `Auto` (simulate × 1.3).
    pub gas: GasSetting,
    /// Fee from a gas price, or fixed coins.
    pub fee: FeeSetting,
    /// Free-form memo stored with the transaction.
    pub memo: String,
    /// How long to wait for the transaction to appear in a block.
    pub timeout: Duration,
}

impl Default for SendTxOptions {
    fn default() -> Self {
        Self {
            gas: GasSetting::default(),
            fee: FeeSetting::default(),
            memo: String::new(),
            timeout: DEFAULT_TX_TIMEOUT,
        }
    }
}

impl ChainClient {
    /// Signs `msgs` with `key` at the account's current number and sequence, choosing gas and fee.
    pub async fn sign_tx(
        &self,
        key: &SigningKey,
        msgs: Vec<Any>,
        options: &SendTxOptions,
    ) -> Result<SignedTx, ClientError> {
        let signer =
            Address::from_public_key(&key.public_key()).map_err(|e| ClientError::Decode {
                what: "signer public key",
                reason: e.to_string(),
            })?;
        let account = self.account(&signer).await?;
        self.sign_at(key, account.account_number, account.sequence, msgs, options)
            .await
    }

    /// Signs `msgs` with `key` at a known account number and sequence, choosing gas (simulated
    /// when `options.gas` is auto) and fee.
    pub async fn sign_at(
        &self,
        key: &SigningKey,
        account_number: u64,
        sequence: u64,
        msgs: Vec<Any>,
        options: &SendTxOptions,
    ) -> Result<SignedTx, ClientError> {
        let chain_id = self.chain_id().await?;
        let builder = TxBuilder::new(chain_id, account_number, sequence)
            .msgs(msgs)
            .memo(options.memo.clone());

        let gas_limit = match options.gas {
            GasSetting::Fixed(limit) => limit,
            GasSetting::Auto => {
                // Simulate a fully signed copy: the node may check signatures and sequence while simulating.
                let probe = builder
                    .clone()
                    .gas_limit(DEFAULT_GAS_LIMIT)
                    .fee(options.fee.fee_for(DEFAULT_GAS_LIMIT)?)
                    .sign(key)?;
                adjusted_gas_limit(self.simulate(probe.bytes).await?)
            }
        };
        let fee = options.fee.fee_for(gas_limit)?;
        Ok(builder.gas_limit(gas_limit).fee(fee).sign(key)?)
    }

    /// Signs, broadcasts and waits for `msgs`; errors if CheckTx or execution fails.
    pub async fn send_tx(
        &self,
        key: &SigningKey,
        msgs: Vec<Any>,
        options: &SendTxOptions,
    ) -> Result<TxOutcome, ClientError> {
        let signed = self.sign_tx(key, msgs, options).await?;
        let hash = self.broadcast_sync(&signed).await?;
        self.wait_for_tx(hash, options.timeout).await
    }

    /// Submits a signed transaction and returns its hash once CheckTx accepted it.
    pub async fn broadcast_sync(&self, tx: &SignedTx) -> Result<Hash, ClientError> {
        let response = self
            .rpc
            .broadcast_tx_sync(tx.bytes.clone())
            .await
            .map_err(|e| self.rpc_error(e))?;
        if response.code.is_err() {
            return Err(ClientError::CheckTx {
                code: response.code.value(),
                codespace: response.codespace,
                log: response.log,
            });
        }
        Ok(response.hash)
    }

    /// The executed transaction with this hash, whatever its result code.
    pub async fn tx(&self, hash: Hash) -> Result<TxOutcome, ClientError> {
        self.find_tx(hash)
            .await?
            .ok_or(ClientError::TxNotFound(hash))
    }

    /// Polls until the transaction is in a block; errors if it failed there or `timeout` passes.
    pub async fn wait_for_tx(
        &self,
        hash: Hash,
        timeout: Duration,
    ) -> Result<TxOutcome, ClientError> {
        let started = Instant::now();
        loop {
            if let Some(outcome) = self.find_tx(hash).await? {
                if !outcome.is_success() {
                    return Err(ClientError::DeliverTx(Box::new(outcome)));
                }
                return Ok(outcome);
            }
            if started.elapsed() >= timeout {
                return Err(ClientError::TxTimeout {
                    hash,
                    waited: timeout,
                });
            }
            tokio::time::sleep(TX_POLL_INTERVAL).await;
        }
    }

    /// `Ok(None)` while the node has not indexed the transaction yet.
    async fn find_tx(&self, hash: Hash) -> Result<Option<TxOutcome>, ClientError> {
        match self.rpc.tx(hash, false).await {
            Ok(response) => Ok(Some(TxOutcome::from(response))),
            // CometBFT answers an unknown hash with an RPC error whose data reads "tx (…) not found".
            Err(e) if e.to_string().contains("not found") => Ok(None),
            Err(e) => Err(self.rpc_error(e)),
        }
    }
}
