//! A cw-multi-test chain with the three market contracts wired together: a registry with one
//! kernel, staking with bonded nodes serving it, the market as staking's slasher, funded users.
//! Nodes are driven by a [`Behaviour`] so tests read as stories.

#![allow(dead_code)]

use cosmwasm_std::{coins, Addr, Binary, Decimal, Empty, HexBinary, Uint128};
use cw_multi_test::{App, AppResponse, Contract, ContractWrapper, Executor};

use nesa_inference_market::msg::{
    ExecuteMsg, InstantiateMsg, MarketParams, NodeOutcome, QueryMsg, QueryResponse, Sampling,
};
use nesa_inference_market::ContractError;
use nesa_market::registry::{self, Encryption, NewKernel, ShardRange};
use nesa_market::sortition::signer::TicketKey;
use nesa_market::staking::{self, NodeProfile, NodeResponse, ServedKernel, SortitionKey};
use nesa_market::{
    commitment, encode_token_ids, fingerprint_positions, result_hash, Fingerprint,
    FingerprintEntry, TopToken,
};

pub use nesa_market::devnet::MIN_STAKE;
pub use nesa_market::DENOM;
pub const NODE_STAKE: u128 = 10 * MIN_STAKE;
pub const USER_FUNDS: u128 = 1_000_000_000_000;
pub const PRICE_IN: u128 = 3;
pub const PRICE_OUT: u128 = 7;
pub const LAYERS: u32 = 30;
/// The kernel's vocabulary and context (SmolLM2's).
pub const VOCAB_SIZE: u32 = 49_152;
pub const CONTEXT_LENGTH: u32 = 8192;
/// Queries each test node takes in flight.
pub const CAPACITY: u32 = 16;
pub const USERS: [&str; 2] = ["alice", "bob"];

pub fn registry_code() -> Box<dyn Contract<Empty>> {
    use nesa_kernel_registry::contract as c;
    Box::new(ContractWrapper::new(c::execute, c::instantiate, c::query).with_migrate(c::migrate))
}

pub fn staking_code() -> Box<dyn Contract<Empty>> {
    use nesa_node_staking::contract as c;
    Box::new(ContractWrapper::new(c::execute, c::instantiate, c::query).with_migrate(c::migrate))
}

pub fn market_code() -> Box<dyn Contract<Empty>> {
    use nesa_inference_market::contract as c;
    Box::new(
        ContractWrapper::new(c::execute, c::instantiate, c::query)
            .with_migrate(c::migrate)
            .with_reply(c::reply),
    )
}

/// The devnet's parameters with a 5% royalty, so rounding shows beside the 10% protocol fee,
/// and smaller payload limits, so oversized requests are cheap to build.
pub fn devnet_params() -> MarketParams {
    MarketParams {
        kernel_royalty: Decimal::percent(5),
        max_input_tokens: 256,
        max_output_tokens: 64,
        max_payload_bytes: 1024,
        ..nesa_market::devnet::market_params()
    }
}

pub fn kernel(name: &str) -> NewKernel {
    NewKernel {
        name: name.into(),
        weights_sha256: HexBinary::from(vec![1; 32]),
        tokenizer_sha256: HexBinary::from(vec![2; 32]),
        architecture: "llama".into(),
        layer_count: LAYERS,
        vocab_size: VOCAB_SIZE,
        context_length: CONTEXT_LENGTH,
        shard_layout: vec![ShardRange {
            start_layer: 0,
            end_layer: LAYERS,
            sha256: HexBinary::from(vec![3; 32]),
        }],
        encryption: Encryption::EeV1,
        price_per_input_token: Uint128::new(PRICE_IN),
        price_per_output_token: Uint128::new(PRICE_OUT),
        min_redundancy: 2,
        description: String::new(),
    }
}

/// How an assigned node acts in a round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// Runs the model: the common output and fingerprint.
    Honest,
    /// Runs the model but its sampling diverged: a different last token, a fingerprint within
    /// the tolerance.
    Diverged,
    /// Never commits.
    Silent,
    /// Commits, never reveals.
    Vanishes,
    /// Copies another node's commitment, then reveals the honest output with its own salt.
    Copier,
    /// Makes up an output and a fingerprint and commits to them properly.
    Lazy,
}

/// The market chain.
pub struct Market {
    pub app: App,
    /// Instantiated the contracts and may migrate them.
    pub admin: Addr,
    pub registry: Addr,
    pub staking: Addr,
    pub market: Addr,
    pub treasury: Addr,
    pub kernel_owner: Addr,
    pub kernel_id: u64,
    pub nodes: Vec<Addr>,
}

impl Market {
    /// Five bonded nodes serving kernel 1, devnet params.
    pub fn new() -> Self {
        Self::with(5, devnet_params())
    }

    pub fn with(node_count: usize, params: MarketParams) -> Self {
        let api = *App::default().api();
        let nodes: Vec<Addr> = (0..node_count)
            .map(|i| api.addr_make(&format!("node-{i}")))
            .collect();
        let funded: Vec<(Addr, u128)> = USERS
            .iter()
            .map(|u| (api.addr_make(u), USER_FUNDS))
            .chain(nodes.iter().map(|n| (n.clone(), NODE_STAKE)))
            .collect();
        let mut app = App::new(|router, _api, storage| {
            for (address, amount) in &funded {
                router
                    .bank
                    .init_balance(storage, address, coins(*amount, DENOM))
                    .unwrap();
            }
        });
        let admin = api.addr_make("admin");
        let treasury = api.addr_make("treasury");
        let kernel_owner = api.addr_make("kernel-owner");

        let code = app.store_code(registry_code());
        let registry = app
            .instantiate_contract(
                code,
                admin.clone(),
                &registry::InstantiateMsg {},
                &[],
                "registry",
                Some(admin.to_string()),
            )
            .unwrap();
        app.execute_contract(
            kernel_owner.clone(),
            registry.clone(),
            &registry::ExecuteMsg::Register(kernel("smollm2-135m")),
            &[],
        )
        .unwrap();

        let code = app.store_code(staking_code());
        let staking = app
            .instantiate_contract(
                code,
                admin.clone(),
                &nesa_market::devnet::staking_instantiate(
                    None,
                    registry.to_string(),
                    None,
                    treasury.to_string(),
                ),
                &[],
                "staking",
                Some(admin.to_string()),
            )
            .unwrap();

        let code = app.store_code(market_code());
        let market = app
            .instantiate_contract(
                code,
                admin.clone(),
                &InstantiateMsg {
                    admin: None,
                    registry: registry.to_string(),
                    staking: staking.to_string(),
                    treasury: treasury.to_string(),
                    params,
                },
                &[],
                "market",
                Some(admin.to_string()),
            )
            .unwrap();
        app.execute_contract(
            admin.clone(),
            staking.clone(),
            &staking::ExecuteMsg::UpdateConfig(staking::ConfigUpdate {
                market: Some(market.to_string()),
                ..Default::default()
            }),
            &[],
        )
        .unwrap();

        let mut chain = Self {
            app,
            admin,
            registry,
            staking,
            market,
            treasury,
            kernel_owner,
            kernel_id: 1,
            nodes: nodes.clone(),
        };
        for node in &nodes {
            chain.bond(node, NODE_STAKE);
        }
        chain
    }

    /// The sortition key of a test node (derived from its address).
    pub fn ticket_key(node: &Addr) -> TicketKey {
        TicketKey::from_seed(node.as_bytes())
    }

    /// A profile serving the kernel with `capacity` and the node's sortition key.
    pub fn profile(&self, node: &Addr, capacity: u32) -> NodeProfile {
        let key = Self::ticket_key(node);
        NodeProfile {
            endpoint: "http://127.0.0.1:8700".into(),
            kernels: vec![ServedKernel {
                kernel_id: self.kernel_id,
                start_layer: 0,
                end_layer: LAYERS,
                block_micros: None,
            }],
            capacity,
            sortition_key: Some(SortitionKey {
                public_key: HexBinary::from(key.public_key().to_vec()),
                proof: HexBinary::from(key.proof_of_possession(node.as_str()).to_vec()),
            }),
        }
    }

    pub fn addr(&self, name: &str) -> Addr {
        self.app.api().addr_make(name)
    }

    pub fn user(&self) -> Addr {
        self.addr("alice")
    }

    pub fn bond(&mut self, node: &Addr, amount: u128) {
        self.bond_with_capacity(node, amount, CAPACITY);
    }

    /// The kernel owner executes `msg` on the registry.
    pub fn registry_execute(&mut self, msg: &registry::ExecuteMsg) -> AppResponse {
        let owner = self.kernel_owner.clone();
        let registry = self.registry.clone();
        self.app
            .execute_contract(owner, registry, msg, &[])
            .unwrap()
    }

    /// Forks kernel 1 into a version with another context length; returns its id.
    pub fn fork_with_context(&mut self, context_length: u32) -> u64 {
        let response = self.registry_execute(&registry::ExecuteMsg::Fork(registry::KernelFork {
            context_length: Some(context_length),
            ..registry::KernelFork::of(1)
        }));
        attribute(&response, "wasm-kernel_forked", "kernel_id")
            .parse()
            .unwrap()
    }

    /// What settlement did to `node` in query `id`.
    pub fn outcome(&self, id: u64, node: &Addr) -> Option<NodeOutcome> {
        self.query(id)
            .assignments
            .into_iter()
            .find(|a| a.node == *node)
            .unwrap()
            .outcome
    }

    /// A new node `name`, funded with `stake` and bonded with it, taking `capacity` queries at
    /// once.
    pub fn add_node(&mut self, name: &str, stake: u128, capacity: u32) -> Addr {
        let node = self.addr(name);
        self.app.init_modules(|router, _, storage| {
            router
                .bank
                .init_balance(storage, &node, coins(stake, DENOM))
                .unwrap()
        });
        self.bond_with_capacity(&node, stake, capacity);
        self.nodes.push(node.clone());
        node
    }

    /// Bonds `amount` with a profile serving the kernel and taking `capacity` queries at once.
    pub fn bond_with_capacity(&mut self, node: &Addr, amount: u128, capacity: u32) {
        let profile = self.profile(node, capacity);
        self.app
            .execute_contract(
                node.clone(),
                self.staking.clone(),
                &staking::ExecuteMsg::Bond {
                    profile: Some(profile),
                },
                &coins(amount, DENOM),
            )
            .unwrap();
        // Stake counts in draws of queries accepted after the block that bonded it.
        self.advance(1);
    }

    /// Executes on the market; a failure is returned as the market's own error.
    pub fn execute(
        &mut self,
        sender: &Addr,
        msg: &ExecuteMsg,
        funds: u128,
    ) -> Result<AppResponse, ContractError> {
        let funds = if funds == 0 {
            vec![]
        } else {
            coins(funds, DENOM)
        };
        self.app
            .execute_contract(sender.clone(), self.market.clone(), msg, &funds)
            .map_err(|e| {
                e.downcast()
                    .unwrap_or_else(|e| panic!("not a market error: {e:?}"))
            })
    }

    pub fn submit_msg(input: &[u32], max_output_tokens: u32, redundancy: Option<u8>) -> ExecuteMsg {
        ExecuteMsg::SubmitQuery {
            kernel_id: 1,
            input: Binary::from(encode_token_ids(input)),
            max_output_tokens,
            sampling: Sampling {
                seed: 42,
                temperature_milli: 0,
                top_p_milli: 1000,
            },
            redundancy,
            user_entropy: Binary::from(vec![7; 32]),
        }
    }

    /// Submits a query, lets every node that may enter its draw do so and draws it; returns
    /// its id.
    pub fn submit(
        &mut self,
        user: &Addr,
        input: &[u32],
        max_output_tokens: u32,
        redundancy: Option<u8>,
        escrow: u128,
    ) -> Result<u64, ContractError> {
        let id = self.submit_undrawn(user, input, max_output_tokens, redundancy, escrow)?;
        self.draw_open(id);
        Ok(id)
    }

    /// Submits a query and returns its id, leaving it drawing.
    pub fn submit_undrawn(
        &mut self,
        user: &Addr,
        input: &[u32],
        max_output_tokens: u32,
        redundancy: Option<u8>,
        escrow: u128,
    ) -> Result<u64, ContractError> {
        let msg = Self::submit_msg(input, max_output_tokens, redundancy);
        let response = self.execute(user, &msg, escrow)?;
        Ok(attribute(&response, "wasm-query_submitted", "query_id")
            .parse()
            .unwrap())
    }

    /// `node`'s ticket for query `id`.
    pub fn ticket(&self, node: &Addr, id: u64) -> HexBinary {
        let input = self.query(id).query.draw_input.to_array().unwrap();
        HexBinary::from(Self::ticket_key(node).ticket(&input).to_vec())
    }

    /// `node` enters the draw of query `id`.
    pub fn enter(&mut self, node: &Addr, id: u64) -> Result<AppResponse, ContractError> {
        let ticket = self.ticket(node, id);
        self.execute(
            node,
            &ExecuteMsg::SubmitTicket {
                query_id: id,
                ticket,
            },
            0,
        )
    }

    /// Moves past the draw window and draws query `id`.
    pub fn draw(&mut self, id: u64) -> Result<AppResponse, ContractError> {
        let deadline = self.query(id).query.draw_deadline;
        self.advance_to(deadline + 1);
        let anyone = self.addr("bob");
        self.execute(&anyone, &ExecuteMsg::Draw { query_id: id }, 0)
    }

    /// Every node that may enter does, then the query is drawn.
    pub fn draw_open(&mut self, id: u64) -> AppResponse {
        for node in self.nodes.clone() {
            let _ = self.enter(&node, id);
        }
        self.draw(id).unwrap()
    }

    /// The escrow a query needs: k × (input × price_in + max_output × price_out).
    pub fn required_escrow(input_tokens: u128, max_output_tokens: u128, k: u128) -> u128 {
        k * (input_tokens * PRICE_IN + max_output_tokens * PRICE_OUT)
    }

    pub fn query(&self, id: u64) -> QueryResponse {
        self.app
            .wrap()
            .query_wasm_smart(&self.market, &QueryMsg::Query { id })
            .unwrap()
    }

    /// The id of the latest query.
    pub fn query_count(&self) -> u64 {
        let config: nesa_inference_market::msg::ConfigResponse = self
            .app
            .wrap()
            .query_wasm_smart(&self.market, &QueryMsg::Config {})
            .unwrap();
        config.query_count
    }

    pub fn assigned(&self, id: u64) -> Vec<Addr> {
        self.query(id).query.nodes
    }

    pub fn seed(&self, id: u64) -> [u8; 32] {
        self.query(id).query.seed.to_array().unwrap()
    }

    /// The output every honest replica computes for a query.
    pub fn honest_output(&self, id: u64) -> Vec<u32> {
        let query = self.query(id).query;
        let len = query.max_output_tokens.min(8);
        (0..len)
            .map(|i| 100 + i + (query.input_tokens * 11))
            .collect()
    }

    /// The fingerprint of a run of the real model over `output_tokens` tokens, its
    /// log-probabilities shifted by `shift` steps (hardware noise).
    pub fn model_fingerprint(&self, id: u64, output_tokens: u32, shift: u8) -> Binary {
        let query = self.query(id).query;
        let seed = self.seed(id);
        fingerprint(&seed, output_tokens, query.fingerprint_positions, 0, shift)
    }

    pub fn salt(node: &Addr, id: u64) -> Vec<u8> {
        let mut salt = format!("salt/{id}/{node}").into_bytes();
        salt.resize(32, b'.');
        salt
    }

    /// Commits to `output` with the model's fingerprint over it (what [`Self::reveal_honest`]
    /// and a reveal of `output` with [`Self::model_fingerprint`]`(id, len, 0)` open). For an
    /// unknown query (no seed to draw positions from) the fingerprint is empty.
    pub fn commit(
        &mut self,
        node: &Addr,
        id: u64,
        output: &[u32],
    ) -> Result<AppResponse, ContractError> {
        let known = self
            .app
            .wrap()
            .query_wasm_smart::<QueryResponse>(&self.market, &QueryMsg::Query { id })
            .is_ok();
        let fingerprint = if known {
            self.model_fingerprint(id, output.len() as u32, 0)
        } else {
            Binary::default()
        };
        self.commit_result(node, id, output, &fingerprint)
    }

    /// Commits to `output` and `fingerprint` with the node's salt, as a node runner does.
    pub fn commit_result(
        &mut self,
        node: &Addr,
        id: u64,
        output: &[u32],
        fingerprint: &[u8],
    ) -> Result<AppResponse, ContractError> {
        let commitment = Self::commitment_of(node, id, output, fingerprint);
        self.commit_raw(node, id, &commitment)
    }

    /// `node`'s commitment to `output` and `fingerprint` with its own salt.
    pub fn commitment_of(node: &Addr, id: u64, output: &[u32], fingerprint: &[u8]) -> [u8; 32] {
        let hash = result_hash(&encode_token_ids(output), fingerprint);
        commitment(node.as_str(), id, &hash, &Self::salt(node, id))
    }

    pub fn commit_raw(
        &mut self,
        node: &Addr,
        id: u64,
        commitment: &[u8],
    ) -> Result<AppResponse, ContractError> {
        let msg = ExecuteMsg::Commit {
            query_id: id,
            commitment: HexBinary::from(commitment.to_vec()),
        };
        self.execute(node, &msg, 0)
    }

    /// Reveals `output` with the node's salt and the given fingerprint.
    pub fn reveal(
        &mut self,
        node: &Addr,
        id: u64,
        output: &[u32],
        fingerprint: Binary,
    ) -> Result<AppResponse, ContractError> {
        let msg = ExecuteMsg::Reveal {
            query_id: id,
            output: Binary::from(encode_token_ids(output)),
            fingerprint,
            salt: Binary::from(Self::salt(node, id)),
            activations: None,
        };
        self.execute(node, &msg, 0)
    }

    /// Reveals the honest output with the model's fingerprint.
    pub fn reveal_honest(&mut self, node: &Addr, id: u64) -> Result<AppResponse, ContractError> {
        let output = self.honest_output(id);
        let fingerprint = self.model_fingerprint(id, output.len() as u32, 0);
        self.reveal(node, id, &output, fingerprint)
    }

    pub fn settle(&mut self, id: u64) -> Result<AppResponse, ContractError> {
        let anyone = self.addr("bob");
        self.execute(&anyone, &ExecuteMsg::Settle { query_id: id }, 0)
    }

    /// Plays a whole round: every assigned node acts by its behaviour (in assignment order),
    /// the chain moves past the deadlines as needed, and the query is settled.
    pub fn play(&mut self, id: u64, behaviours: &[Behaviour]) -> AppResponse {
        let nodes = self.assigned(id);
        assert_eq!(
            nodes.len(),
            behaviours.len(),
            "one behaviour per assigned node"
        );
        let honest = self.honest_output(id);
        let tokens = honest.len() as u32;
        let mut diverged = honest.clone();
        *diverged.last_mut().unwrap() += 1;
        let seed = self.seed(id);
        let positions = self.query(id).query.fingerprint_positions;
        // What each node reveals: its output and fingerprint. Each lazy node makes up its own
        // output and fingerprint (they do not collude); a copier reveals the honest result.
        let results: Vec<(Vec<u32>, Binary)> = behaviours
            .iter()
            .enumerate()
            .map(|(index, behaviour)| match behaviour {
                Behaviour::Diverged => (diverged.clone(), self.model_fingerprint(id, tokens, 2)),
                Behaviour::Lazy => (
                    (0..tokens)
                        .map(|i| 9_000 + i * 13 + index as u32 * 101)
                        .collect(),
                    fingerprint(&seed, tokens, positions, 5_000 + index as u32 * 500, 0),
                ),
                _ => (honest.clone(), self.model_fingerprint(id, tokens, 0)),
            })
            .collect();
        let first_committer = nodes
            .iter()
            .zip(behaviours)
            .position(|(_, b)| !matches!(b, Behaviour::Silent | Behaviour::Copier));

        for (index, (node, behaviour)) in nodes.iter().zip(behaviours).enumerate() {
            let (output, fingerprint) = &results[index];
            match behaviour {
                Behaviour::Honest | Behaviour::Vanishes | Behaviour::Diverged | Behaviour::Lazy => {
                    self.commit_result(node, id, output, fingerprint)
                }
                Behaviour::Copier => {
                    // Copies a real commitment when there is one; its own address is not in it.
                    let copied = first_committer
                        .map(|i| {
                            let (output, fingerprint) = &results[i];
                            Self::commitment_of(&nodes[i], id, output, fingerprint)
                        })
                        .unwrap_or([5; 32]);
                    self.commit_raw(node, id, &copied)
                }
                Behaviour::Silent => continue,
            }
            .unwrap();
        }
        if !self
            .query(id)
            .query
            .status
            .eq(&nesa_inference_market::msg::QueryStatus::Revealing)
        {
            let deadline = self.query(id).query.commit_deadline;
            self.advance_to(deadline + 1);
        }
        for (index, (node, behaviour)) in nodes.iter().zip(behaviours).enumerate() {
            if matches!(behaviour, Behaviour::Silent | Behaviour::Vanishes) {
                continue;
            }
            let (output, fingerprint) = results[index].clone();
            self.reveal(node, id, &output, fingerprint).unwrap();
        }
        match self.settle(id) {
            Ok(response) => response,
            Err(ContractError::SettleTooEarly {
                reveal_deadline, ..
            }) => {
                self.advance_to(reveal_deadline + 1);
                self.settle(id).unwrap()
            }
            Err(e) => panic!("settle failed: {e}"),
        }
    }

    pub fn balance(&self, address: &Addr) -> u128 {
        self.app
            .wrap()
            .query_balance(address, DENOM)
            .unwrap()
            .amount
            .u128()
    }

    pub fn node(&self, node: &Addr) -> NodeResponse {
        self.app
            .wrap()
            .query_wasm_smart(
                &self.staking,
                &staking::QueryMsg::Node {
                    address: node.to_string(),
                },
            )
            .unwrap()
    }

    /// Every account and contract that can hold unes in this chain.
    pub fn accounts(&self) -> Vec<Addr> {
        let mut all: Vec<Addr> = USERS.iter().map(|u| self.addr(u)).collect();
        all.extend(self.nodes.iter().cloned());
        all.extend([
            self.treasury.clone(),
            self.kernel_owner.clone(),
            self.registry.clone(),
            self.staking.clone(),
            self.market.clone(),
            self.addr("admin"),
        ]);
        all
    }

    pub fn total_unes(&self) -> u128 {
        self.accounts().iter().map(|a| self.balance(a)).sum()
    }

    pub fn height(&self) -> u64 {
        self.app.block_info().height
    }

    /// Moves `blocks` blocks on (5 s each).
    pub fn advance(&mut self, blocks: u64) {
        self.app.update_block(|b| {
            b.height += blocks;
            b.time = b.time.plus_seconds(5 * blocks);
        });
    }

    pub fn advance_to(&mut self, height: u64) {
        let now = self.height();
        if height > now {
            self.advance(height - now);
        }
    }
}

/// A fingerprint whose top token ids are offset by `vocab_offset` (another model would have
/// other tokens) and whose log-probabilities are shifted by `shift` steps.
pub fn fingerprint(
    seed: &[u8; 32],
    output_tokens: u32,
    count: u32,
    vocab_offset: u32,
    shift: u8,
) -> Binary {
    let entries = fingerprint_positions(seed, output_tokens, count as usize)
        .into_iter()
        .map(|p| FingerprintEntry {
            position: p as u16,
            top: [0u32, 1, 2].map(|r| TopToken {
                token_id: vocab_offset + p * 3 + r,
                logprob_q: 3 + 12 * r as u8 + shift,
            }),
        })
        .collect();
    Binary::from(Fingerprint { entries }.encode().unwrap())
}

/// The value of `key` in the first event of type `ty`.
pub fn attribute(response: &AppResponse, ty: &str, key: &str) -> String {
    response
        .events
        .iter()
        .filter(|e| e.ty == ty)
        .flat_map(|e| &e.attributes)
        .find(|a| a.key == key)
        .unwrap_or_else(|| panic!("no {ty}.{key} in {:?}", response.events))
        .value
        .clone()
}

/// Every event of type `ty`.
pub fn events<'a>(response: &'a AppResponse, ty: &str) -> Vec<&'a cosmwasm_std::Event> {
    response.events.iter().filter(|e| e.ty == ty).collect()
}
