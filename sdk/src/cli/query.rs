//! `nesa query …`: read chain state.

use std::fmt::Write;

use clap::Subcommand;
use nesa_sdk::{tendermint::Hash, AccountInfo, ChainClient, Coin, TxOutcome, BASE_DENOM};

use super::{
    output::{emit, unes_as_nes},
    resolve::address_or_key_name,
    GlobalArgs,
};

#[derive(Subcommand)]
pub enum QueryCommand {
    /// Bank module queries
    #[command(subcommand)]
    Bank(BankQueryCommand),
    /// Auth module queries
    #[command(subcommand)]
    Auth(AuthQueryCommand),
    /// Contract queries
    #[command(subcommand)]
    Wasm(super::wasm::WasmQueryCommand),
    /// Inference market: queries, kernels, parameters
    #[command(subcommand)]
    Market(super::market::MarketQueryCommand),
    /// Look up an executed transaction by hash
    Tx {
        /// Transaction hash (hex)
        hash: String,
    },
}

#[derive(Subcommand)]
pub enum BankQueryCommand {
    /// Balances of an account
    Balances {
        /// A nesa1… address (or a local key name)
        address: String,
        /// Show only this denom
        #[arg(long)]
        denom: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum AuthQueryCommand {
    /// Account number, sequence and public key of an account
    Account {
        /// A nesa1… address (or a local key name)
        address: String,
    },
}

pub async fn run(command: QueryCommand, global: &GlobalArgs) -> anyhow::Result<()> {
    let command = match command {
        QueryCommand::Wasm(command) => return super::wasm::run_query(command, global).await,
        QueryCommand::Market(command) => return super::market::run(command, global).await,
        other => other,
    };
    let client = ChainClient::new(&global.node)?;
    match command {
        QueryCommand::Wasm(_) | QueryCommand::Market(_) => unreachable!("handled above"),
        QueryCommand::Bank(BankQueryCommand::Balances { address, denom }) => {
            let address = address_or_key_name(&address, global)?;
            let balances: Vec<Coin> = match denom {
                Some(denom) => vec![client.balance(&address, &denom).await?],
                None => client.all_balances(&address).await?.into_iter().collect(),
            };
            emit(global.output, &balances, |balances| {
                describe_balances(balances)
            })
        }
        QueryCommand::Auth(AuthQueryCommand::Account { address }) => {
            let address = address_or_key_name(&address, global)?;
            let account = client.account(&address).await?;
            emit(global.output, &account, describe_account)
        }
        QueryCommand::Tx { hash } => {
            let hash: Hash = hash.trim().to_uppercase().parse().map_err(|_| {
                anyhow::anyhow!("'{hash}' is not a transaction hash: expected 64 hex characters")
            })?;
            let outcome = client.tx(hash).await?;
            emit(global.output, &outcome, describe_tx)
        }
    }
}

fn describe_balances(balances: &[Coin]) -> String {
    if balances.is_empty() {
        return "no balances".to_owned();
    }
    balances
        .iter()
        .map(|coin| match coin.denom.as_str() {
            BASE_DENOM => format!("{coin} ({} NES)\n", unes_as_nes(coin.amount)),
            _ => format!("{coin}\n"),
        })
        .collect()
}

fn describe_account(account: &AccountInfo) -> String {
    let pubkey = match &account.pub_key {
        Some(key) => hex::encode(key.to_bytes()),
        None => "(none yet: set by the account's first transaction)".to_owned(),
    };
    format!(
        "address: {}\naccount number: {}\nsequence: {}\npubkey: {pubkey}",
        account.address, account.account_number, account.sequence
    )
}

fn describe_tx(outcome: &TxOutcome) -> String {
    let mut text = format!(
        "txhash: {}\nheight: {}\ncode: {}\n",
        outcome.hash, outcome.height, outcome.code
    );
    if !outcome.codespace.is_empty() {
        let _ = writeln!(text, "codespace: {}", outcome.codespace);
    }
    let _ = writeln!(text, "log: {}", outcome.log);
    let _ = writeln!(
        text,
        "gas used: {} / wanted: {}",
        outcome.gas_used, outcome.gas_wanted
    );
    let _ = writeln!(text, "events:");
    for event in &outcome.events {
        let _ = writeln!(text, "  {}", event.kind);
        for attribute in &event.attributes {
            let _ = writeln!(text, "    {}: {}", attribute.key, attribute.value);
        }
    }
    text
}
