//! The gateway's spending caps: most escrow per request, most spent per UTC day. A request's
//! escrow is reserved before it is submitted (so concurrent requests cannot overrun the day's
//! cap together) and replaced by what it cost once it settles. The day's total is kept in a
//! file, so restarting the gateway does not reset it.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// Seconds in a day: days are counted in UTC from the epoch.
const DAY_SECONDS: u64 = 86_400;

/// The caps, in unes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caps {
    pub per_request: u128,
    pub per_day: u128,
}

/// Why a request may not spend.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum CapError {
    #[error("this request needs an escrow of {escrow}unes, above the gateway's cap of {cap}unes per request (raise it with --max-per-request, or ask for fewer max_tokens)")]
    PerRequest { escrow: u128, cap: u128 },
    #[error("this request needs an escrow of {escrow}unes, but the gateway has {left}unes left of its {cap}unes cap for today (UTC; raise it with --max-per-day)")]
    PerDay { escrow: u128, left: u128, cap: u128 },
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Day {
    /// Days since the epoch (UTC).
    day: u64,
    /// What the day's settled requests cost, in unes.
    spent: u128,
    /// Escrow of requests not settled yet, whatever day they were reserved: they count against
    /// today until they settle, so a query reserved before midnight is not forgotten after.
    #[serde(default)]
    open: u128,
}

impl Day {
    /// The record as of `day`: a new day starts with nothing spent but keeps what is open.
    fn on(self, day: u64) -> Day {
        match self.day == day {
            true => self,
            false => Day {
                day,
                spent: 0,
                open: self.open,
            },
        }
    }

    fn counted(&self) -> u128 {
        self.spent.saturating_add(self.open)
    }
}

/// Spending so far and the caps it is held to.
pub struct Ledger {
    caps: Caps,
    file: Option<PathBuf>,
    today: Mutex<Day>,
}

/// An escrow reserved against the day's cap; [`Ledger::settle`] turns it into its cost.
#[derive(Debug)]
#[must_use = "settle the reservation with what the query cost"]
pub struct Reservation {
    day: u64,
    amount: u128,
}

impl Ledger {
    /// A ledger kept in `file` (created on first spend), or in memory only.
    pub fn open(caps: Caps, file: Option<&Path>) -> anyhow::Result<Ledger> {
        let today = match file {
            Some(file) if file.exists() => {
                let text = std::fs::read_to_string(file)?;
                serde_json::from_str(&text).map_err(|e| {
                    anyhow::anyhow!(
                        "{} is not a spending record ({e}): delete it to start the day's count at 0",
                        file.display()
                    )
                })?
            }
            _ => Day::default(),
        };
        Ok(Ledger {
            caps,
            file: file.map(Path::to_path_buf),
            today: Mutex::new(today),
        })
    }

    pub fn caps(&self) -> Caps {
        self.caps
    }

    /// Spent today and reserved, at `now` (seconds since the epoch).
    pub fn spent_today(&self, now: u64) -> u128 {
        let today = self.today.lock().unwrap_or_else(|p| p.into_inner());
        today.on(now / DAY_SECONDS).counted()
    }

    /// Reserves `escrow` at `now`, or says which cap forbids it.
    pub fn reserve(&self, escrow: u128, now: u64) -> Result<Reservation, CapError> {
        if escrow > self.caps.per_request {
            return Err(CapError::PerRequest {
                escrow,
                cap: self.caps.per_request,
            });
        }
        let day = now / DAY_SECONDS;
        let mut today = self.today.lock().unwrap_or_else(|p| p.into_inner());
        *today = today.on(day);
        let left = self.caps.per_day.saturating_sub(today.counted());
        if escrow > left {
            return Err(CapError::PerDay {
                escrow,
                left,
                cap: self.caps.per_day,
            });
        }
        today.open = today.open.saturating_add(escrow);
        self.save(&today);
        Ok(Reservation {
            day,
            amount: escrow,
        })
    }

    /// Replaces `reservation` with what the request cost (0 when it was never submitted), at
    /// most its escrow: the cost counts on the day it was reserved, when that is still today.
    pub fn settle(&self, reservation: Reservation, cost: u128) {
        let mut today = self.today.lock().unwrap_or_else(|p| p.into_inner());
        today.open = today.open.saturating_sub(reservation.amount);
        if today.day == reservation.day {
            today.spent = today.spent.saturating_add(cost.min(reservation.amount));
        }
        self.save(&today);
    }

    fn save(&self, day: &Day) {
        let Some(file) = &self.file else { return };
        let written = serde_json::to_vec(day)
            .map_err(std::io::Error::other)
            .and_then(|bytes| {
                if let Some(dir) = file.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                let partial = file.with_extension("json.partial");
                std::fs::write(&partial, bytes)?;
                std::fs::rename(&partial, file)
            });
        if let Err(error) = written {
            tracing::warn!(file = %file.display(), %error, "could not record today's spending");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAPS: Caps = Caps {
        per_request: 500,
        per_day: 1000,
    };
    const NOON: u64 = 20_000 * DAY_SECONDS + DAY_SECONDS / 2;

    #[test]
    fn reservations_count_against_the_day_until_settled_for_their_cost() {
        let ledger = Ledger::open(CAPS, None).unwrap();
        let first = ledger.reserve(500, NOON).unwrap();
        let second = ledger.reserve(400, NOON).unwrap();
        assert_eq!(
            ledger.reserve(200, NOON).unwrap_err(),
            CapError::PerDay {
                escrow: 200,
                left: 100,
                cap: 1000
            }
        );
        ledger.settle(first, 120);
        ledger.settle(second, 0);
        assert_eq!(ledger.spent_today(NOON), 120);
        assert!(ledger.reserve(500, NOON).is_ok());
    }

    #[test]
    fn an_escrow_open_at_midnight_still_counts_the_next_day_until_it_settles() {
        let ledger = Ledger::open(CAPS, None).unwrap();
        let late = ledger.reserve(500, NOON + DAY_SECONDS / 2 - 1).unwrap();
        let next_day = NOON + DAY_SECONDS;
        assert_eq!(ledger.spent_today(next_day), 500);
        assert!(ledger.reserve(501, next_day).is_err());
        ledger.settle(late, 400);
        assert_eq!(
            ledger.spent_today(next_day),
            0,
            "its cost belongs to the day before"
        );
        assert!(ledger.reserve(500, next_day).is_ok());
    }

    #[test]
    fn one_request_above_its_cap_is_refused_whatever_is_left() {
        let ledger = Ledger::open(CAPS, None).unwrap();
        assert_eq!(
            ledger.reserve(501, NOON).unwrap_err(),
            CapError::PerRequest {
                escrow: 501,
                cap: 500
            }
        );
        assert_eq!(ledger.spent_today(NOON), 0);
    }

    #[test]
    fn a_new_day_starts_at_zero_and_a_restart_keeps_the_days_count() {
        let dir = std::env::temp_dir().join(format!("nesa-ledger-{}", std::process::id()));
        let file = dir.join("spending.json");
        let ledger = Ledger::open(CAPS, Some(&file)).unwrap();
        let r = ledger.reserve(300, NOON).unwrap();
        ledger.settle(r, 250);
        let reopened = Ledger::open(CAPS, Some(&file)).unwrap();
        assert_eq!(reopened.spent_today(NOON), 250);
        assert_eq!(reopened.spent_today(NOON + DAY_SECONDS), 0);
        let tomorrow = reopened.reserve(500, NOON + DAY_SECONDS).unwrap();
        reopened.settle(tomorrow, 10);
        assert_eq!(reopened.spent_today(NOON + DAY_SECONDS), 10);
        std::fs::write(&file, "not json").unwrap();
        assert!(Ledger::open(CAPS, Some(&file)).is_err());
        let _ = std::fs::remove_dir_all(dir);
    }
}
