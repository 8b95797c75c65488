//! The progress display of `nesa ask` on stderr: one line per phase change, or one line
//! rewritten in place when stderr is a terminal.

use std::io::{IsTerminal, Write};

use nesa_market::market::{QueryPhase, QueryResponse, QueryStatus};
use nesa_sdk::market::progress::Progress;

use crate::cli::output::short_address;

/// The line naming the nodes a query was assigned to.
pub fn assigned_line(state: &QueryResponse) -> String {
    let nodes: Vec<String> = state
        .query
        .nodes
        .iter()
        .map(|n| short_address(n.as_str()))
        .collect();
    format!("assigned to {} nodes: {}", nodes.len(), nodes.join(", "))
}

/// What the user reads about `state`: where the query is now.
pub fn progress_line(state: &QueryResponse) -> String {
    let progress = Progress::of(state);
    let k = progress.nodes;
    let closed_at = state
        .query
        .settlement
        .as_ref()
        .map(|s| s.height)
        .unwrap_or_default();
    match state.query.status {
        QueryStatus::Settled => {
            let winners = state
                .query
                .settlement
                .as_ref()
                .map_or(0, |s| s.winners.len());
            return format!("settled at height {closed_at}: {winners}/{k} nodes agreed");
        }
        QueryStatus::Disputed if state.query.nodes.is_empty() => {
            return format!("disputed at height {closed_at}: too few nodes entered the draw");
        }
        QueryStatus::Disputed => return format!("disputed at height {closed_at}: no quorum"),
        QueryStatus::Drawing | QueryStatus::Pending | QueryStatus::Revealing => {}
    }
    match state.phase {
        QueryPhase::Draw => {
            let tickets = progress.tickets;
            let plural = if tickets == 1 { "" } else { "s" };
            format!(
                "drawing: {tickets} ticket{plural}, draw after height {}",
                state.query.draw_deadline
            )
        }
        QueryPhase::Commit if progress.committed == 0 => assigned_line(state),
        QueryPhase::Commit => format!("committed {}/{k}", progress.committed),
        QueryPhase::Reveal if progress.revealed == 0 && progress.committed == k => {
            format!("committed {k}/{k}")
        }
        QueryPhase::Reveal if progress.revealed == 0 => {
            format!("commit window closed: committed {}/{k}", progress.committed)
        }
        QueryPhase::Reveal => format!("revealed {}/{k}", progress.revealed),
        QueryPhase::Settleable | QueryPhase::Closed => {
            format!("revealed {}/{k}; settling", progress.revealed)
        }
    }
}

/// Writes progress lines, skipping states that show nothing new.
pub struct ProgressDisplay<W: Write> {
    out: W,
    /// Rewrite one line with `\r` instead of printing a line per change.
    in_place: bool,
    last: Option<Progress>,
    line_open: bool,
    /// Whether the assigned nodes were shown.
    assigned_shown: bool,
}

impl ProgressDisplay<std::io::Stderr> {
    /// A display on stderr, in place when stderr is a terminal.
    pub fn stderr() -> Self {
        let in_place = std::io::stderr().is_terminal();
        ProgressDisplay::new(std::io::stderr(), in_place)
    }
}

impl<W: Write> ProgressDisplay<W> {
    /// A display writing to `out`.
    pub fn new(out: W, in_place: bool) -> Self {
        ProgressDisplay {
            out,
            in_place,
            last: None,
            line_open: false,
            assigned_shown: false,
        }
    }

    /// Shows `text` as the current phase.
    pub fn line(&mut self, text: &str) {
        // Progress is best effort: a closed stderr must not fail the query.
        let _ = if self.in_place {
            self.line_open = true;
            write!(self.out, "\r\x1b[2K{text}")
        } else {
            writeln!(self.out, "{text}")
        };
        let _ = self.out.flush();
    }

    /// Shows `state` if it differs from the last state shown.
    pub fn update(&mut self, state: &QueryResponse) {
        let progress = Progress::of(state);
        if self.last == Some(progress) {
            return;
        }
        // The assignment is always worth a line, even when the first state seen with nodes is
        // further on.
        let line = progress_line(state);
        if !self.assigned_shown && !state.query.nodes.is_empty() {
            self.assigned_shown = true;
            let assigned = assigned_line(state);
            if line != assigned {
                self.line(&assigned);
            }
        }
        self.last = Some(progress);
        self.line(&line);
    }

    /// Ends the in-place line so what follows starts on its own line.
    pub fn finish(&mut self) {
        if self.line_open {
            let _ = writeln!(self.out);
            self.line_open = false;
        }
    }

    #[cfg(test)]
    fn into_inner(self) -> W {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use nesa_sdk::market::progress::fixtures::*;

    use super::*;

    #[test]
    fn each_phase_has_its_line() {
        let mut state = submitted(3);
        let line = progress_line(&state);
        assert!(
            line.starts_with("assigned to 3 nodes: nesa1node0…aaa0, "),
            "{line}"
        );
        commit(&mut state, 0, 12);
        assert_eq!(progress_line(&state), "committed 1/3");
        commit(&mut state, 1, 12);
        commit(&mut state, 2, 13);
        assert_eq!(progress_line(&state), "committed 3/3");
        reveal(&mut state, 0, 15, &[5]);
        assert_eq!(progress_line(&state), "revealed 1/3");
        state.phase = QueryPhase::Settleable;
        assert_eq!(progress_line(&state), "revealed 1/3; settling");
        assert_eq!(
            progress_line(&honest_round(&[5])),
            "settled at height 17: 3/3 nodes agreed"
        );
        assert_eq!(
            progress_line(&disputed_round()),
            "disputed at height 17: no quorum"
        );
    }

    #[test]
    fn a_draw_shows_its_tickets_then_the_assignment() {
        let mut display = ProgressDisplay::new(Vec::new(), false);
        let mut state = drawing(2);
        assert_eq!(
            progress_line(&state),
            "drawing: 0 tickets, draw after height 13"
        );
        display.update(&state);
        enter(&mut state, &node(0), 100, 1);
        assert_eq!(
            progress_line(&state),
            "drawing: 1 ticket, draw after height 13"
        );
        display.update(&state);
        enter(&mut state, &node(1), 100, 2);
        display.update(&state);
        draw(&mut state, &[node(0), node(1)]);
        commit(&mut state, 0, 15);
        display.update(&state);
        let text = String::from_utf8(display.into_inner()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5, "{text}");
        assert_eq!(lines[2], "drawing: 2 tickets, draw after height 13");
        assert!(lines[3].starts_with("assigned to 2 nodes: "), "{text}");
        assert_eq!(lines[4], "committed 1/2");
    }

    #[test]
    fn a_query_nobody_could_be_drawn_for_is_disputed_without_nodes() {
        let mut state = drawing(3);
        enter(&mut state, &node(0), 100, 1);
        close(&mut state, QueryStatus::Disputed, settlement(14));
        assert_eq!(
            progress_line(&state),
            "disputed at height 14: too few nodes entered the draw"
        );
    }

    #[test]
    fn a_closed_commit_window_is_reported_with_the_commits_it_got() {
        let mut state = submitted(3);
        commit(&mut state, 0, 12);
        commit(&mut state, 1, 12);
        state.phase = QueryPhase::Reveal;
        assert_eq!(progress_line(&state), "commit window closed: committed 2/3");
    }

    #[test]
    fn unchanged_states_print_nothing_new() {
        let mut display = ProgressDisplay::new(Vec::new(), false);
        let mut state = submitted(2);
        display.update(&state);
        display.update(&state);
        commit(&mut state, 0, 11);
        display.update(&state);
        display.update(&state);
        display.finish();
        let text = String::from_utf8(display.into_inner()).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(text.ends_with("committed 1/2\n"), "{text}");
    }

    #[test]
    fn the_assignment_is_shown_even_when_the_first_state_is_further_on() {
        let mut display = ProgressDisplay::new(Vec::new(), false);
        display.update(&honest_round(&[5]));
        let text = String::from_utf8(display.into_inner()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].starts_with("assigned to 3 nodes: "), "{text}");
        assert_eq!(lines[1], "settled at height 17: 3/3 nodes agreed");
    }

    #[test]
    fn on_a_terminal_one_line_is_rewritten_and_closed_at_the_end() {
        let mut display = ProgressDisplay::new(Vec::new(), true);
        display.line("submitted query 7");
        let mut state = submitted(2);
        display.update(&state);
        commit(&mut state, 0, 11);
        display.update(&state);
        display.finish();
        let text = String::from_utf8(display.into_inner()).unwrap();
        assert_eq!(text.matches('\r').count(), 3);
        assert_eq!(text.matches('\n').count(), 1);
        assert!(text.ends_with("\r\x1b[2Kcommitted 1/2\n"), "{text:?}");
    }
}
