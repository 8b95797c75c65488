//! Sending transactions: sign with fresh account state, broadcast, wait for the block.

use std::time::{Duration, Instant};

use cosmrs::{
    crypto::{secp256k1::SigningKey, PublicKey},
    tendermint::Hash,
    Any,
};
use tendermint_rpc::Client;

use super::{ChainClient, ClientError, TxOutcome, TxSender};
use crate::{
    address::{Address, AddressExt},
    coin::Coins,
    fee::{adjusted_gas_limit, FeeSetting, GasSetting},
    tx::{SignDocParts, SignedTx, TxBuilder},
};

/// How often `wait_for_tx` asks the node whether the transaction is in a block yet.
const TX_POLL_INTERVAL: Duration = Duration::from_millis(200);
/// Default time to wait for inclusion: many blocks even on a slow multi-validator network.
pub const DEFAULT_TX_TIMEOUT: Duration = Duration::from_secs(60);

/// When signing simulates the transaction first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Simulate {
    /// Only to find the gas of `GasSetting::Auto`.
    WhenAuto,
    /// Always: a contract call's own error comes back before anything is sent.
    Always,
}

/// How a transaction's gas, fee and memo are picked, and how long to wait for inclusion.
#[derive(Clone, Debug)]
pub struct SendTxOptions {
    /// `Auto` by default (simulate and add 30%, as CosmJS's "auto"), or a fixed gas limit.
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
        let account = (account_number, sequence);
        self.sign_checked(key, account, msgs, options, Simulate::WhenAuto)
            .await
    }

    /// Signs `msgs`; simulates them first when `simulate` asks (for the gas, and so a failing
    /// message is refused here with its own error instead of costing a fee on chain).
    pub(super) async fn sign_checked(
        &self,
        key: &SigningKey,
        account: (u64, u64),
        msgs: Vec<Any>,
        options: &SendTxOptions,
        simulate: Simulate,
    ) -> Result<SignedTx, ClientError> {
        // Simulate a fully signed copy: the node may check signatures and sequence while
        // simulating.
        let probe = |builder: TxBuilder| Ok(builder.sign(key)?.bytes);
        let builder = self.priced(account, msgs, options, simulate, probe).await?;
        Ok(builder.sign(key)?)
    }

    /// The `SignDoc` of `msgs` for the account holding `public_key`, for a wallet to sign
    /// (Keplr's `signDirect`): simulated first, so a message the chain would refuse fails here
    /// with its own reason; gas and fee chosen as for [`ChainClient::send_tx`]. The signed
    /// `TxRaw` is [`SignDocParts::with_signature`].
    pub async fn sign_doc_for(
        &self,
        public_key: PublicKey,
        msgs: Vec<Any>,
        options: &SendTxOptions,
    ) -> Result<SignDocParts, ClientError> {
        let signer = Address::from_public_key(&public_key).map_err(|e| ClientError::Decode {
            what: "signer public key",
            reason: e.to_string(),
        })?;
        let account = self.account(&signer).await?;
        let account = (account.account_number, account.sequence);
        // Simulation checks no signature: an empty one stands in for the wallet's.
        let probe = |builder: TxBuilder| {
            Ok(builder
                .sign_doc(public_key)?
                .with_signature(Vec::new())
                .bytes)
        };
        let builder = self
            .priced(account, msgs, options, Simulate::Always, probe)
            .await?;
        Ok(builder.sign_doc(public_key)?)
    }

    /// A builder for `msgs` with its gas limit (simulated through `probe`'s encoding when the
    /// gas is auto, or when `simulate` asks) and fee set.
    async fn priced(
        &self,
        (account_number, sequence): (u64, u64),
        msgs: Vec<Any>,
        options: &SendTxOptions,
        simulate: Simulate,
        probe: impl Fn(TxBuilder) -> Result<Vec<u8>, ClientError>,
    ) -> Result<TxBuilder, ClientError> {
        let chain_id = self.chain_id().await?;
        let builder = TxBuilder::new(chain_id, account_number, sequence)
            .msgs(msgs)
            .memo(options.memo.clone());
        // Gas limit 0 and no fee ask for an estimate up to the chain's maximum per transaction
        // (as CosmJS simulates); a fixed limit is simulated as it will be sent.
        let probe_at = |gas_limit: u64| -> Result<Vec<u8>, ClientError> {
            let fee = if gas_limit == 0 {
                Coins::default()
            } else {
                options.fee.fee_for(gas_limit)?
            };
            probe(builder.clone().gas_limit(gas_limit).fee(fee))
        };
        let gas_limit = match options.gas {
            GasSetting::Auto => adjusted_gas_limit(self.simulate(probe_at(0)?).await?),
            GasSetting::Fixed(limit) => {
                if simulate == Simulate::Always {
                    self.simulate(probe_at(limit)?).await?;
                }
                limit
            }
        };
        let fee = options.fee.fee_for(gas_limit)?;
        Ok(builder.gas_limit(gas_limit).fee(fee))
    }

    /// Signs, broadcasts and waits for `msgs`; errors if CheckTx or execution fails.
    pub async fn send_tx(
        &self,
        key: &SigningKey,
        msgs: Vec<Any>,
        options: &SendTxOptions,
    ) -> Result<TxOutcome, ClientError> {
        TxSender::new(self, key)?.send(msgs, options).await
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
