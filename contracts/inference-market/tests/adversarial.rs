//! A seeded random walk over thousands of market steps: honest and hostile users, honest and
//! hostile nodes, and blocks going by. After every step:
//! - unes are conserved (every balance, the contracts' included, adds up to the start);
//! - no honest node is ever slashed or jailed;
//! - the market holds exactly the escrow of the queries still open (none for ended ones);
//! - no node holds more open assignments than its declared capacity.
//!
//! At the end, with only blocks going by and honest work, every query ends (settled or
//! refunded) and the market holds nothing.
//!
//! Hostile nodes do not collude (each makes up its own output): the market's guarantee to
//! honest nodes assumes the faulty ones are no majority of a query.

mod support;

use std::collections::BTreeMap;

use cosmwasm_std::{Addr, Binary, Decimal, HexBinary, Uint128};
use cw_multi_test::Executor;
use nesa_inference_market::msg::{ExecuteMsg, QueryPhase, QueryStatus};
use nesa_inference_market::ContractError;
use nesa_market::encode_token_ids;
use nesa_market::staking;

use support::*;

const STEPS: usize = 2500;
const SEEDS: [u64; 3] = [0x5eed_0001, 0xdead_beef, 42];
const HONEST: [(&str, u32); 5] = [
    ("honest-0", 1),
    ("honest-1", 2),
    ("honest-2", 3),
    ("honest-3", 1),
    ("honest-4", 4),
];
const HOSTILE: [(&str, u32); 3] = [("hostile-0", 2), ("hostile-1", 1), ("hostile-2", 3)];
/// Most blocks one step moves the chain by.
const MAX_ADVANCE: u64 = 2;

/// splitmix64: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// What a hostile node does with a query it is assigned.
#[derive(Clone, Copy, Debug)]
enum Plan {
    /// Never commits.
    Silent,
    /// Commits to the honest result, never reveals.
    Vanish,
    /// Commits to the honest result, reveals another output.
    WrongReveal,
    /// Commits to a made-up output and fingerprint of its own and reveals them.
    Lazy,
}

const PLANS: [Plan; 4] = [Plan::Silent, Plan::Vanish, Plan::WrongReveal, Plan::Lazy];

struct OpenQuery {
    escrow: u128,
    /// Hostile nodes' plans (honest nodes just do the work).
    plans: BTreeMap<Addr, Plan>,
}

/// How often each kind of event happened, so the walk is known to cover them.
#[derive(Debug, Default)]
struct Stats {
    settled: usize,
    disputed: usize,
    /// Submissions that found fewer free nodes than asked for (capacity reached).
    no_capacity: usize,
    /// Draws with fewer usable tickets than seats (refunded).
    undrawn: usize,
    refused_attacks: usize,
    claims_paid: usize,
    claims_refused: usize,
    hostile_unbonds: usize,
}

struct World {
    market: Market,
    rng: Rng,
    honest: Vec<Addr>,
    hostile: Vec<Addr>,
    capacity: BTreeMap<Addr, u32>,
    total: u128,
    open: BTreeMap<u64, OpenQuery>,
    ended: usize,
    /// The last accepted submission, for replays.
    last_submit: Option<(ExecuteMsg, u128)>,
    stats: Stats,
}

impl World {
    fn new(seed: u64) -> Self {
        let mut market = Market::with(0, devnet_params());
        let mut capacity = BTreeMap::new();
        let mut add = |market: &mut Market, (name, cap): (&str, u32)| {
            let node = market.add_node(name, NODE_STAKE, cap);
            capacity.insert(node.clone(), cap);
            node
        };
        let honest = HONEST.iter().map(|&n| add(&mut market, n)).collect();
        let hostile = HOSTILE.iter().map(|&n| add(&mut market, n)).collect();
        // A version of the kernel with a 40-token context, for submissions that overflow it.
        assert_eq!(market.fork_with_context(40), 2);
        let total = market.total_unes();
        Self {
            market,
            rng: Rng(seed),
            honest,
            hostile,
            capacity,
            total,
            open: BTreeMap::new(),
            ended: 0,
            last_submit: None,
            stats: Stats::default(),
        }
    }

    fn is_honest(&self, node: &Addr) -> bool {
        self.honest.contains(node)
    }

    fn submit_msg(&mut self, kernel_id: u64, input: &[u32], max_output_tokens: u32) -> ExecuteMsg {
        let mut entropy = [0u8; 32];
        entropy[..8].copy_from_slice(&self.rng.next().to_le_bytes());
        ExecuteMsg::SubmitQuery {
            kernel_id,
            input: Binary::from(encode_token_ids(input)),
            max_output_tokens,
            sampling: nesa_inference_market::msg::Sampling {
                seed: 42,
                temperature_milli: 0,
                top_p_milli: 1000,
            },
            redundancy: Some(2 + self.rng.below(2) as u8),
            user_entropy: Binary::from(entropy.to_vec()),
        }
    }

    /// Submits; on success records the query and the hostile nodes' plans.
    fn try_submit(&mut self, user: &Addr, msg: &ExecuteMsg, escrow: u128) -> Option<u64> {
        let response = match self.market.execute(user, msg, escrow) {
            Ok(response) => response,
            Err(ContractError::NotEnoughCandidates { .. }) => {
                self.stats.no_capacity += 1;
                return None;
            }
            Err(e) => panic!("an honest submission failed: {e}"),
        };
        let id: u64 = attribute(&response, "wasm-query_submitted", "query_id")
            .parse()
            .unwrap();
        // Plans are made once the hostile nodes know they were drawn (`keeper`).
        self.open.insert(
            id,
            OpenQuery {
                escrow,
                plans: BTreeMap::new(),
            },
        );
        self.last_submit = Some((msg.clone(), escrow));
        Some(id)
    }

    fn honest_user(&mut self) {
        let user = self.market.addr(USERS[0]);
        let input_tokens = 1 + self.rng.below(20) as u32;
        let max_output = 1 + self.rng.below(16) as u32;
        let input: Vec<u32> = (0..input_tokens)
            .map(|_| self.rng.below(u64::from(VOCAB_SIZE)) as u32)
            .collect();
        let msg = self.submit_msg(1, &input, max_output);
        let ExecuteMsg::SubmitQuery { redundancy, .. } = &msg else {
            unreachable!()
        };
        let escrow = Market::required_escrow(
            u128::from(input_tokens),
            u128::from(max_output),
            u128::from(redundancy.unwrap()),
        ) + u128::from(self.rng.below(50) as u32);
        self.try_submit(&user, &msg, escrow);
    }

    /// Every hostile user action is refused and moves nothing, except a replay, which is a
    /// new query paid again.
    fn hostile_user(&mut self) {
        let attacker = self.market.addr(USERS[1]);
        let before = self.market.balance(&attacker);
        let params = devnet_params();
        let choice = self.rng.below(10);
        let result = match choice {
            0 => {
                // Oversized input.
                let input: Vec<u32> = (0..params.max_input_tokens + 1).collect();
                let msg = self.submit_msg(1, &input, 4);
                self.market.execute(&attacker, &msg, 10_000_000)
            }
            1 => {
                // A token id outside the vocabulary.
                let token = VOCAB_SIZE + self.rng.below(1000) as u32;
                let msg = self.submit_msg(1, &[1, token, 2], 4);
                self.market.execute(&attacker, &msg, 10_000_000)
            }
            2 => {
                // Input plus output longer than the 40-token kernel's context.
                let input: Vec<u32> = (0..30).collect();
                let max_output = 11 + self.rng.below(20) as u32;
                let msg = self.submit_msg(2, &input, max_output);
                self.market.execute(&attacker, &msg, 10_000_000)
            }
            3 => {
                // Underpaid escrow.
                let msg = self.submit_msg(1, &[1, 2, 3], 8);
                self.market.execute(&attacker, &msg, 1)
            }
            4 => {
                // Replays the last accepted submission: a new, paid query.
                if let Some((msg, escrow)) = self.last_submit.clone() {
                    self.try_submit(&attacker, &msg, escrow);
                }
                return;
            }
            5 => {
                // Settles some open query early (or a closed or unknown one).
                let id = self.some_query_id();
                let result =
                    self.market
                        .execute(&attacker, &ExecuteMsg::Settle { query_id: id }, 0);
                match result {
                    Ok(_) => {
                        // It was settleable: a legitimate settlement by anyone.
                        self.ended_query(id);
                        return;
                    }
                    Err(e) => Err(e),
                }
            }
            6 => {
                // Changes the market's parameters.
                let mut params = devnet_params();
                params.slash.outlier = Decimal::one();
                self.market
                    .execute(&attacker, &ExecuteMsg::UpdateParams { params }, 0)
            }
            7 => {
                // Commits to a query it is not assigned.
                let id = self.some_query_id();
                self.market.commit_raw(&attacker, id, &[9; 32])
            }
            _ => {
                // Slashes, locks or unlocks an honest node through staking.
                let victim = self.rng.pick(&self.honest).to_string();
                let msg = match self.rng.below(3) {
                    0 => staking::ExecuteMsg::Slash {
                        node: victim,
                        fraction: Decimal::one(),
                        jail: true,
                        reason: "grudge".into(),
                        query_id: 1,
                    },
                    1 => staking::ExecuteMsg::Lock {
                        query_id: 999_999,
                        nodes: vec![victim],
                        until: u64::MAX,
                    },
                    _ => staking::ExecuteMsg::Unlock {
                        query_id: self.some_query_id(),
                        nodes: vec![victim],
                    },
                };
                let staking = self.market.staking.clone();
                let refused = self
                    .market
                    .app
                    .execute_contract(attacker.clone(), staking, &msg, &[])
                    .is_err();
                assert!(refused, "staking accepted {msg:?} from a user");
                assert_eq!(self.market.balance(&attacker), before);
                self.stats.refused_attacks += 1;
                return;
            }
        };
        assert!(result.is_err(), "hostile action {choice} was accepted");
        assert_eq!(self.market.balance(&attacker), before);
        self.stats.refused_attacks += 1;
    }

    fn some_query_id(&mut self) -> u64 {
        let ids: Vec<u64> = self.open.keys().copied().collect();
        if ids.is_empty() || self.rng.chance(10) {
            1 + self.rng.below(self.ended as u64 + ids.len() as u64 + 2)
        } else {
            *self.rng.pick(&ids)
        }
    }

    fn ended_query(&mut self, id: u64) {
        match self.market.query(id).query.status {
            QueryStatus::Settled => self.stats.settled += 1,
            QueryStatus::Disputed => self.stats.disputed += 1,
            status => panic!("query {id} is still {status:?}"),
        }
        self.open.remove(&id).expect("an open query");
        self.ended += 1;
    }

    /// Nodes enter draws: honest ones always in time, hostile ones when they like, with a
    /// ticket of their own or a forged one (always refused).
    fn nodes_enter(&mut self, draining: bool) {
        let ids: Vec<u64> = self.open.keys().copied().collect();
        let nodes: Vec<Addr> = self.honest.iter().chain(&self.hostile).cloned().collect();
        for id in ids {
            let response = self.market.query(id);
            let height = self.market.height();
            if response.phase != QueryPhase::Draw || height > response.query.draw_deadline {
                continue;
            }
            let urgent = response.query.draw_deadline < height + MAX_ADVANCE + 1;
            for node in &nodes {
                if response.tickets.iter().any(|t| t.node == *node) {
                    continue;
                }
                let result = if self.is_honest(node) {
                    if !(draining || urgent || self.rng.chance(60)) {
                        continue;
                    }
                    self.market.enter(node, id)
                } else {
                    match self.rng.below(4) {
                        0 => self.market.enter(node, id),
                        1 => {
                            // Another node's ticket, or noise.
                            let victim = self.rng.pick(&self.honest).clone();
                            let forged = if self.rng.chance(50) {
                                self.market.ticket(&victim, id)
                            } else {
                                HexBinary::from(vec![self.rng.below(256) as u8; 96])
                            };
                            let msg = ExecuteMsg::SubmitTicket {
                                query_id: id,
                                ticket: forged,
                            };
                            let result = self.market.execute(node, &msg, 0);
                            // Refused as forged, or before that as coming from a node that
                            // may not enter at all (at capacity, jailed, unbonded).
                            assert!(
                                matches!(
                                    result,
                                    Err(ContractError::InvalidTicket { .. }
                                        | ContractError::NotDrawable { .. })
                                ),
                                "a forged ticket was not refused: {result:?}"
                            );
                            self.stats.refused_attacks += 1;
                            continue;
                        }
                        _ => continue,
                    }
                };
                match result {
                    Ok(_) => {}
                    // At capacity, or its stake changed since the query came in.
                    Err(ContractError::NotDrawable { .. }) => {}
                    Err(e) => panic!("{node} could not enter the draw of {id}: {e}"),
                }
            }
        }
    }

    /// Each assigned node acts on each open query by its nature.
    fn nodes_act(&mut self, draining: bool) {
        self.nodes_enter(draining);
        let ids: Vec<u64> = self.open.keys().copied().collect();
        for id in ids {
            let response = self.market.query(id);
            let height = self.market.height();
            let query = &response.query;
            for assignment in &response.assignments {
                let node = assignment.node.clone();
                let committed = assignment.commitment.is_some();
                let revealed = assignment.reveal.is_some();
                let plan = self.open[&id].plans.get(&node).copied();
                let commits_open = height <= query.commit_deadline;
                let reveals_open = response.phase == QueryPhase::Reveal;
                match plan {
                    None => {
                        // Honest: acts at a random moment, but always in time.
                        let urgent = |deadline: u64| deadline < height + MAX_ADVANCE + 1;
                        let eager = draining || self.rng.chance(60);
                        if !committed && commits_open && (eager || urgent(query.commit_deadline)) {
                            let output = self.market.honest_output(id);
                            self.market.commit(&node, id, &output).unwrap();
                        } else if committed
                            && !revealed
                            && reveals_open
                            && (eager || urgent(query.reveal_deadline))
                        {
                            self.market.reveal_honest(&node, id).unwrap();
                        }
                    }
                    Some(plan) => self.hostile_node_acts(id, &node, plan, committed, revealed),
                }
            }
        }
    }

    fn hostile_node_acts(
        &mut self,
        id: u64,
        node: &Addr,
        plan: Plan,
        committed: bool,
        revealed: bool,
    ) {
        if !self.rng.chance(50) {
            return;
        }
        let honest = self.market.honest_output(id);
        let tokens = honest.len() as u32;
        let index = self.hostile.iter().position(|h| h == node).unwrap() as u32;
        let made_up: Vec<u32> = (0..tokens).map(|i| 7_000 + i * 13 + index * 101).collect();
        let seed = self.market.seed(id);
        let positions = self.market.query(id).query.fingerprint_positions;
        let made_up_fp = fingerprint(&seed, tokens, positions, 3_000 + index * 500, 0);
        if !committed {
            match plan {
                Plan::Silent => {
                    // A reveal without a commitment is refused.
                    let err = self
                        .market
                        .reveal(
                            node,
                            id,
                            &honest,
                            self.market.model_fingerprint(id, tokens, 0),
                        )
                        .unwrap_err();
                    assert!(matches!(err, ContractError::NotCommitted { .. }), "{err}");
                }
                Plan::Vanish | Plan::WrongReveal => {
                    let _ = self.market.commit(node, id, &honest);
                }
                Plan::Lazy => {
                    let _ = self.market.commit_result(node, id, &made_up, &made_up_fp);
                }
            }
            return;
        }
        // A second commitment is refused.
        if self.rng.chance(20) {
            assert!(matches!(
                self.market.commit_raw(node, id, &[1; 32]),
                Err(ContractError::AlreadyCommitted { .. })
                    | Err(ContractError::CommitClosed { .. })
            ));
        }
        if revealed {
            assert!(
                self.market.reveal_honest(node, id).is_err(),
                "a second reveal"
            );
            return;
        }
        // Reveals may not be open yet: such an attempt is refused and changes nothing.
        let _ = match plan {
            Plan::Silent | Plan::Vanish => return,
            Plan::WrongReveal => {
                let mut wrong = honest.clone();
                wrong[0] += 1;
                let fp = self.market.model_fingerprint(id, tokens, 0);
                self.market.reveal(node, id, &wrong, fp)
            }
            Plan::Lazy => self.market.reveal(node, id, &made_up, made_up_fp),
        };
    }

    /// Hostile nodes also unbond mid-query, try to claim, and unjail when they may.
    fn hostile_staking(&mut self) {
        let node = self.rng.pick(&self.hostile).clone();
        let staking = self.market.staking.clone();
        let state = self.market.node(&node);
        let height = self.market.height();
        match self.rng.below(3) {
            0 if !state.bonded.is_zero() && state.unbonding.len() < 16 => {
                let amount = 1 + self.rng.below((state.bonded.u128() / 3).max(1) as u64) as u128;
                self.market
                    .app
                    .execute_contract(
                        node,
                        staking,
                        &staking::ExecuteMsg::Unbond {
                            amount: Uint128::new(amount.min(state.bonded.u128())),
                        },
                        &[],
                    )
                    .unwrap();
                self.stats.hostile_unbonds += 1;
            }
            1 => {
                // What may be paid: matured entries no open query assigned before them holds.
                let claimable: u128 = state
                    .unbonding
                    .iter()
                    .filter(|e| e.release_height <= height)
                    .filter(|e| {
                        !state.assignments.iter().any(|a| {
                            a.expires_height >= height && a.assigned_height <= e.unbonded_height
                        })
                    })
                    .map(|e| e.amount.u128())
                    .sum();
                let before = self.market.balance(&node);
                let claimed = self
                    .market
                    .app
                    .execute_contract(node.clone(), staking, &staking::ExecuteMsg::Claim {}, &[])
                    .is_ok();
                assert_eq!(claimed, claimable > 0);
                assert_eq!(self.market.balance(&node), before + claimable);
                if claimed {
                    self.stats.claims_paid += 1;
                } else {
                    self.stats.claims_refused += 1;
                }
            }
            _ => {
                if state.jailed_until.is_some_and(|until| until <= height) {
                    self.market
                        .app
                        .execute_contract(node, staking, &staking::ExecuteMsg::Unjail {}, &[])
                        .unwrap();
                }
            }
        }
    }

    /// Anyone draws queries past their draw window and settles queries that are settleable.
    fn keeper(&mut self, all: bool) {
        let ids: Vec<u64> = self.open.keys().copied().collect();
        for id in ids {
            let state = self.market.query(id);
            let height = self.market.height();
            if state.phase == QueryPhase::Draw && (all || self.rng.chance(40)) {
                if height <= state.query.draw_deadline {
                    continue;
                }
                let anyone = self.market.addr("bob");
                self.market
                    .execute(&anyone, &ExecuteMsg::Draw { query_id: id }, 0)
                    .unwrap();
                if self.market.query(id).query.status.is_final() {
                    self.stats.undrawn += 1;
                    self.ended_query(id);
                    continue;
                }
                let hostile: Vec<Addr> = self
                    .market
                    .assigned(id)
                    .into_iter()
                    .filter(|n| !self.is_honest(n))
                    .collect();
                for node in hostile {
                    let plan = *self.rng.pick(&PLANS);
                    self.open.get_mut(&id).unwrap().plans.insert(node, plan);
                }
            } else if state.phase == QueryPhase::Settleable && (all || self.rng.chance(40)) {
                self.market.settle(id).unwrap();
                self.ended_query(id);
            }
        }
    }

    fn check(&self, step: usize) {
        let market = &self.market;
        assert_eq!(
            market.total_unes(),
            self.total,
            "step {step}: unes conserved"
        );
        let escrow: u128 = self.open.values().map(|q| q.escrow).sum();
        assert_eq!(
            market.balance(&market.market),
            escrow,
            "step {step}: the market holds the open queries' escrow and nothing else"
        );
        for node in self.honest.iter().chain(&self.hostile) {
            let state = market.node(node);
            assert!(
                state.open_assignments <= self.capacity[node],
                "step {step}: {node} holds {} queries, capacity {}",
                state.open_assignments,
                self.capacity[node]
            );
            if self.is_honest(node) {
                assert!(
                    state.slashed.is_zero(),
                    "step {step}: honest {node} slashed"
                );
                assert!(!state.jailed, "step {step}: honest {node} jailed");
            }
        }
    }

    fn run(&mut self) {
        for step in 0..STEPS {
            match self.rng.below(10) {
                0..=2 => self.honest_user(),
                3..=4 => self.hostile_user(),
                5 => self.hostile_staking(),
                _ => {}
            }
            self.nodes_act(false);
            self.keeper(false);
            let blocks = self.rng.below(MAX_ADVANCE + 1);
            self.market.advance(blocks);
            self.check(step);
        }
        // Only honest work and blocks from here: every query ends.
        let mut rounds = 0;
        while !self.open.is_empty() {
            rounds += 1;
            assert!(rounds < 100, "queries never ended: {:?}", self.open.keys());
            self.nodes_act(true);
            self.keeper(true);
            self.market.advance(1);
            self.check(STEPS + rounds);
        }
        assert_eq!(self.market.balance(&self.market.market), 0);
        let submitted = self.ended;
        for id in 1..=submitted as u64 {
            let status = self.market.query(id).query.status;
            assert!(
                matches!(status, QueryStatus::Settled | QueryStatus::Disputed),
                "query {id} is {status:?}"
            );
        }
    }
}

#[test]
fn a_random_mix_of_honest_and_hostile_actors_never_breaks_the_markets_invariants() {
    for seed in SEEDS {
        let mut world = World::new(seed);
        world.run();
        let stats = &world.stats;
        println!("seed {seed:#x}: {stats:?}");
        assert!(stats.settled > 50, "seed {seed:#x}: {stats:?}");
        assert!(stats.disputed > 0, "seed {seed:#x}: {stats:?}");
        assert!(stats.no_capacity > 0, "seed {seed:#x}: {stats:?}");
        assert!(stats.refused_attacks > 100, "seed {seed:#x}: {stats:?}");
        assert!(stats.claims_paid > 0, "seed {seed:#x}: {stats:?}");
        assert!(stats.claims_refused > 0, "seed {seed:#x}: {stats:?}");
        assert!(stats.hostile_unbonds > 0, "seed {seed:#x}: {stats:?}");
        // Hostile nodes were caught: some of them lost stake.
        let slashed: u128 = world
            .hostile
            .iter()
            .map(|n| world.market.node(n).slashed.u128())
            .sum();
        assert!(
            slashed > 0,
            "seed {seed:#x}: no hostile node was ever slashed"
        );
    }
}
