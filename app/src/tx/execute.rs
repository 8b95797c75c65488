//! Executing a checked transaction: gas for its size, the ante checks, then every message in
//! one atomic overlay. A failed message reverts all messages but keeps the fee and sequence.

use cosmrs::proto::cosmos::base::abci::v1beta1::TxMsgData;
use prost::Message;
use tendermint_proto::v0_38::abci::Event;

use super::ante::ante;
use super::{CheckedTx, Params, TxError};
use crate::events::{event, tag_message_index};
use crate::modules::wasm::{CallSite, WasmVm};
use crate::msg::MsgContext;
use crate::state::{Changes, Gas, GasCosts, GasMeter, Metered, Overlay, StateRead};

/// Why the transaction is being executed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExecMode {
    /// Mempool admission: ante checks only.
    Check,
    /// Block execution.
    Deliver,
    /// Gas estimation: no signature check, no fee minimum; the gas limit is the transaction's
    /// when it names one, and never more than the chain's maximum per transaction.
    Simulate,
}

/// The block a transaction executes in.
#[derive(Clone, Copy, Debug)]
pub struct TxEnv<'a> {
    pub chain_id: &'a str,
    /// Block time in nanoseconds since the Unix epoch.
    pub time_nanos: u64,
    /// Position of the transaction in its block.
    pub tx_index: u32,
    /// The contract VM.
    pub wasm: &'a std::sync::Arc<WasmVm>,
    /// Signatures already verified on this node (skips repeat verification).
    pub signatures: Option<&'a super::SignatureCache>,
    pub height: u64,
    pub params: &'a Params,
    pub mode: ExecMode,
}

impl TxEnv<'_> {
    /// The block as contracts see it.
    pub fn block_info(&self) -> cosmwasm_std::BlockInfo {
        cosmwasm_std::BlockInfo {
            height: self.height,
            time: cosmwasm_std::Timestamp::from_nanos(self.time_nanos),
            chain_id: self.chain_id.to_string(),
        }
    }
}

/// What executing a transaction produced.
#[derive(Debug)]
pub struct TxOutcome {
    pub result: Result<(), TxError>,
    pub gas_wanted: Gas,
    pub gas_used: Gas,
    pub events: Vec<Event>,
    /// Protobuf `TxMsgData` with each message's response.
    pub data: Vec<u8>,
    /// State changes to apply: `None` when the ante checks failed (the tx changes nothing).
    pub changes: Option<Changes>,
}

/// The gas a transaction may use. A simulation without a limit (CosmJS and the SDK's CLI send
/// 0) gets the chain's maximum per transaction, as wasmd caps simulations at the block's.
fn gas_limit(tx: &CheckedTx, env: &TxEnv) -> Gas {
    let max = env.params.max_tx_gas;
    match env.mode {
        ExecMode::Simulate if tx.gas_limit == 0 => max,
        _ => tx.gas_limit.min(max),
    }
}

/// Executes `tx` over `parent`; the caller applies `changes` on success.
pub fn execute_tx<P: StateRead>(parent: &P, tx: &CheckedTx, env: &TxEnv) -> TxOutcome {
    let meter = GasMeter::new(gas_limit(tx, env));
    let gas_wanted = tx.gas_limit;
    let mut events = vec![];
    let rejected = |error: TxError, meter: &GasMeter, events: Vec<Event>| TxOutcome {
        result: Err(error),
        gas_wanted,
        gas_used: meter.used(),
        events,
        data: vec![],
        changes: None,
    };

    if let Err(e) = meter.consume(GasCosts::SDK.tx_size_per_byte * tx.size as Gas, "txSize") {
        return rejected(e.into(), &meter, vec![]);
    }
    let mut ante_state = Overlay::new(parent);
    if let Err(e) = ante(
        &mut Metered::new(&mut ante_state, &meter),
        &meter,
        tx,
        env,
        &mut events,
    ) {
        return rejected(e, &meter, vec![]);
    }
    if env.mode == ExecMode::Check {
        return TxOutcome {
            result: Ok(()),
            gas_wanted,
            gas_used: meter.used(),
            events,
            data: vec![],
            changes: Some(ante_state.into_changes()),
        };
    }

    let mut msg_state = Overlay::new(&ante_state);
    let mut msg_events = vec![];
    let mut msg_responses = vec![];
    let mut failure = None;
    let context = MsgContext {
        vm: env.wasm,
        meter: &meter,
        site: CallSite {
            block: env.block_info(),
            tx_index: Some(env.tx_index),
            depth: 0,
            simulation: env.mode == ExecMode::Simulate,
        },
    };
    for (index, msg) in tx.msgs.iter().enumerate() {
        let signer = msg.signer().to_string();
        let mut emitted = vec![event(
            "message",
            &[
                ("action", msg.type_url()),
                ("sender", &signer),
                ("module", msg.module()),
            ],
        )];
        match msg.execute(&context, &mut msg_state, &mut emitted) {
            Ok(executed) => {
                tag_message_index(&mut emitted, index);
                msg_events.extend(emitted);
                msg_responses.push(executed.response);
            }
            Err(e) => {
                let error = match TxError::from(e) {
                    TxError::OutOfGas(log) => TxError::OutOfGas(log),
                    other => TxError::Message {
                        index,
                        source: Box::new(other),
                    },
                };
                failure = Some(error);
                break;
            }
        }
    }
    let msg_changes = msg_state.into_changes();
    let (result, data) = match failure {
        None => {
            ante_state.apply(msg_changes);
            events.extend(msg_events);
            #[allow(deprecated)]
            let data = TxMsgData {
                data: vec![],
                msg_responses,
            }
            .encode_to_vec();
            (Ok(()), data)
        }
        Some(error) => (Err(error), vec![]),
    };
    TxOutcome {
        result,
        gas_wanted,
        gas_used: meter.used(),
        events,
        data,
        changes: Some(ante_state.into_changes()),
    }
}
