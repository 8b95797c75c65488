//! `nesa tx wasm …` and `nesa query wasm …`: upload, instantiate, execute and query contracts
//! (the forms wasmd users know).

use std::io::Write;

use clap::Subcommand;
use cosmrs::proto::cosmwasm::wasm::v1 as proto;
use nesa_sdk::{cosmrs, Coins, CoinsExt, TxOutcome};
use prost::Message;

use super::output::emit;
use super::tx::TxFlags;
use super::GlobalArgs;

#[derive(Subcommand)]
pub enum WasmTxCommand {
    /// Upload a contract (.wasm); prints its code id
    Store {
        /// The .wasm file
        file: std::path::PathBuf,
        /// Name of the local key that signs and pays
        #[arg(long)]
        from: String,
        #[command(flatten)]
        flags: TxFlags,
    },
    /// Instantiate a stored code; prints the contract address
    Instantiate {
        /// Code id from `store`
        code_id: u64,
        /// Instantiate message (JSON)
        msg: String,
        /// Human-readable label
        #[arg(long)]
        label: String,
        /// Who may migrate the contract (an address or key name)
        #[arg(long, conflicts_with = "no_admin")]
        admin: Option<String>,
        /// Make the contract immutable
        #[arg(long)]
        no_admin: bool,
        /// Coins sent to the contract, e.g. 1000unes
        #[arg(long)]
        amount: Option<Coins>,
        #[arg(long)]
        from: String,
        #[command(flatten)]
        flags: TxFlags,
    },
    /// Execute a contract
    Execute {
        /// Contract address
        contract: String,
        /// Execute message (JSON)
        msg: String,
        /// Coins sent with the call, e.g. 1000unes
        #[arg(long)]
        amount: Option<Coins>,
        #[arg(long)]
        from: String,
        #[command(flatten)]
        flags: TxFlags,
    },
}

#[derive(Subcommand)]
pub enum WasmQueryCommand {
    /// Ask a contract a smart query (JSON)
    Smart {
        /// Contract address
        contract: String,
        /// Query message (JSON)
        msg: String,
    },
    /// Metadata of a contract
    Contract {
        /// Contract address
        contract: String,
    },
}

fn json(text: &str, what: &str) -> anyhow::Result<serde_json::Value> {
    serde_json::from_str(text).map_err(|e| anyhow::anyhow!("the {what} is not valid JSON: {e}"))
}

fn any(type_url: &str, msg: impl Message) -> cosmrs::Any {
    cosmrs::Any {
        type_url: type_url.to_string(),
        value: msg.encode_to_vec(),
    }
}

fn gzip(bytes: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes)?;
    Ok(encoder.finish()?)
}

fn describe(outcome: &TxOutcome, extra: &str) -> String {
    format!(
        "{extra}txhash: {}\nheight: {}\ngas used: {} / wanted: {}",
        outcome.hash, outcome.height, outcome.gas_used, outcome.gas_wanted
    )
}

pub async fn run_tx(command: WasmTxCommand, global: &GlobalArgs) -> anyhow::Result<()> {
    let keyring = global.open_keyring()?;
    let (from, flags, msg, summary) = match command {
        WasmTxCommand::Store { file, from, flags } => {
            let wasm = std::fs::read(&file)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
            let sender = keyring.show(&from)?.address;
            let msg = any(
                "/cosmwasm.wasm.v1.MsgStoreCode",
                proto::MsgStoreCode {
                    sender: sender.to_string(),
                    wasm_byte_code: gzip(&wasm)?,
                    instantiate_permission: None,
                },
            );
            (from, flags, msg, code_id_line as Summary)
        }
        WasmTxCommand::Instantiate {
            code_id,
            msg,
            label,
            admin,
            no_admin,
            amount,
            from,
            flags,
        } => {
            let sender = keyring.show(&from)?.address;
            let admin = match (admin, no_admin) {
                (Some(admin), _) => {
                    super::resolve::address_or_key_name(&admin, global)?.to_string()
                }
                (None, true) => String::new(),
                (None, false) => anyhow::bail!(
                    "pass --admin <address> (may migrate the contract) or --no-admin (immutable)"
                ),
            };
            let msg = any(
                "/cosmwasm.wasm.v1.MsgInstantiateContract",
                proto::MsgInstantiateContract {
                    sender: sender.to_string(),
                    admin,
                    code_id,
                    label,
                    msg: serde_json::to_vec(&json(&msg, "instantiate message")?)?,
                    funds: amount.unwrap_or_default().to_proto(),
                },
            );
            (from, flags, msg, contract_line as Summary)
        }
        WasmTxCommand::Execute {
            contract,
            msg,
            amount,
            from,
            flags,
        } => {
            let key = keyring.signing_key(&from)?;
            let outcome = flags
                .client(global)?
                .execute_contract(
                    &key,
                    &contract.parse()?,
                    &json(&msg, "execute message")?,
                    &amount.unwrap_or_default(),
                    &flags.send_options(),
                )
                .await?;
            return emit(global.output, &outcome, |o| describe(o, ""));
        }
    };
    let key = keyring.signing_key(&from)?;
    let client = flags.client(global)?;
    let outcome = client
        .send_tx(&key, vec![msg], &flags.send_options())
        .await?;
    emit(global.output, &outcome, |o| describe(o, &summary(o)))
}

/// What a transaction kind adds to the printed outcome (the new code id or contract).
type Summary = fn(&TxOutcome) -> String;

fn code_id_line(outcome: &TxOutcome) -> String {
    let code_id = outcome.event_attribute("store_code", "code_id");
    format!("code id: {}\n", code_id.unwrap_or("?"))
}

fn contract_line(outcome: &TxOutcome) -> String {
    let contract = outcome.event_attribute("instantiate", "_contract_address");
    format!("contract: {}\n", contract.unwrap_or("?"))
}

pub async fn run_query(command: WasmQueryCommand, global: &GlobalArgs) -> anyhow::Result<()> {
    let client = nesa_sdk::ChainClient::new(&global.node)?;
    match command {
        WasmQueryCommand::Smart { contract, msg } => {
            let answer: serde_json::Value = client
                .query_contract(&contract.parse()?, &json(&msg, "query message")?)
                .await?;
            println!("{}", serde_json::to_string_pretty(&answer)?);
        }
        WasmQueryCommand::Contract { contract } => {
            let response: proto::QueryContractInfoResponse = client
                .abci_query(
                    "/cosmwasm.wasm.v1.Query/ContractInfo",
                    &proto::QueryContractInfoRequest {
                        address: contract.clone(),
                    },
                )
                .await?;
            let info = response.contract_info.unwrap_or_default();
            let value = serde_json::json!({
                "address": response.address, "code_id": info.code_id, "creator": info.creator,
                "admin": info.admin, "label": info.label,
            });
            emit(global.output, &value, |v| {
                format!(
                    "address: {}\ncode id: {}\ncreator: {}\nadmin: {}\nlabel: {}",
                    v["address"].as_str().unwrap_or(""),
                    v["code_id"],
                    v["creator"].as_str().unwrap_or(""),
                    v["admin"].as_str().unwrap_or(""),
                    v["label"].as_str().unwrap_or("")
                )
            })?;
        }
    }
    Ok(())
}
