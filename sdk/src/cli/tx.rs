//! `nesa tx …`: sign, broadcast and confirm transactions.

use clap::{Args, Subcommand};
use nesa_sdk::{
    fee::DEFAULT_GAS_PRICE, msgs::bank_send, tendermint::chain, ChainClient, Coins, FeeSetting,
    GasPrice, GasSetting, Keyring, SendTxOptions, TxOutcome,
};

use super::{output::emit, resolve::address_or_key_name, GlobalArgs};

#[derive(Subcommand)]
pub enum TxCommand {
    /// Bank module transactions
    #[command(subcommand)]
    Bank(BankTxCommand),
    /// Contract transactions: store, instantiate, execute
    #[command(subcommand)]
    Wasm(super::wasm::WasmTxCommand),
}

#[derive(Subcommand)]
pub enum BankTxCommand {
    /// Send coins from a local key to an address
    Send {
        /// Name of the local key that signs and pays
        from_key: String,
        /// Recipient: a nesa1… address (or a local key name)
        to_address: String,
        /// Coins to send, e.g. 1000000unes or 10unes,5foo
        coins: Coins,
        #[command(flatten)]
        flags: TxFlags,
    },
}

/// Flags shared by every transaction command.
#[derive(Args)]
pub struct TxFlags {
    /// Chain id to sign for (asked from the node when omitted)
    #[arg(long, value_name = "ID")]
    chain_id: Option<chain::Id>,
    /// Gas limit, or "auto" to simulate and add 30%
    #[arg(long, value_name = "N|auto", default_value = "auto")]
    gas: GasSetting,
    /// Price per unit of gas; fee = ceil(gas × price)
    #[arg(long, value_name = "PRICE", default_value = DEFAULT_GAS_PRICE, conflicts_with = "fees")]
    gas_prices: GasPrice,
    /// Exact fee to pay instead of gas × price, e.g. 5000unes
    #[arg(long, value_name = "COINS")]
    fees: Option<Coins>,
    /// Memo stored with the transaction
    #[arg(long, default_value = "")]
    memo: String,
}

impl TxFlags {
    pub(super) fn client(&self, global: &GlobalArgs) -> anyhow::Result<ChainClient> {
        let client = ChainClient::new(&global.node)?;
        Ok(match &self.chain_id {
            Some(chain_id) => client.with_chain_id(chain_id.clone()),
            None => client,
        })
    }

    pub(super) fn send_options(&self) -> SendTxOptions {
        let fee = match &self.fees {
            Some(coins) => FeeSetting::Fixed(coins.clone()),
            None => FeeSetting::GasPrice(self.gas_prices.clone()),
        };
        SendTxOptions {
            gas: self.gas,
            fee,
            memo: self.memo.clone(),
            ..SendTxOptions::default()
        }
    }
}

pub async fn run(command: TxCommand, global: &GlobalArgs) -> anyhow::Result<()> {
    match command {
        TxCommand::Wasm(command) => super::wasm::run_tx(command, global).await,
        TxCommand::Bank(BankTxCommand::Send {
            from_key,
            to_address,
            coins,
            flags,
        }) => {
            if coins.is_empty() {
                anyhow::bail!("nothing to send: give coins like 1000000unes");
            }
            let keyring = Keyring::open(&global.home_dir()?)?;
            let sender = keyring.show(&from_key)?;
            let signing_key = sender.signing_key()?;
            let recipient = address_or_key_name(&to_address, global)?;
            let send = bank_send(&sender.address, &recipient, &coins)?;

            let client = flags.client(global)?;
            let outcome = client
                .send_tx(&signing_key, vec![send], &flags.send_options())
                .await?;
            emit(global.output, &outcome, describe_included_tx)
        }
    }
}

fn describe_included_tx(outcome: &TxOutcome) -> String {
    format!(
        "txhash: {}\nheight: {}\ngas used: {} / wanted: {}",
        outcome.hash, outcome.height, outcome.gas_used, outcome.gas_wanted
    )
}
