//! Caller number pools: a routing gateway's numbers lent to calls, each to at most
//! `multiplexes` calls at once, handed out in turn or at random. A call's numbers
//! come back when it ends (for `simulate`, when the run ends).

use std::collections::HashMap;
use std::sync::Mutex;

use rand::Rng;

use switchyard_model::{CallerPool, PoolSelection};

/// Every pool's numbers in use, by gateway.
#[derive(Default)]
pub(crate) struct Pools {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Calls holding each (gateway, number).
    in_use: HashMap<(String, String), u32>,
    /// What each call holds.
    by_call: HashMap<String, Vec<(String, String)>>,
    /// Where each gateway's round robin goes on.
    next: HashMap<String, usize>,
}

impl Pools {
    /// Calls holding pool numbers, and (gateway, number) pairs lent.
    pub(crate) fn loans(&self) -> (usize, usize) {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        (state.by_call.len(), state.in_use.len())
    }

    /// Lend `call_id` one of `gateway`'s `pool` numbers; None when each is at its limit.
    pub(crate) fn lease(&self, gateway: &str, pool: &CallerPool, call_id: &str) -> Option<String> {
        let count = pool.numbers.len();
        if count == 0 {
            return None;
        }
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let start = match pool.selection {
            PoolSelection::RoundRobin => state.next.get(gateway).copied().unwrap_or(0),
            PoolSelection::Random => rand::rng().random_range(0..count),
        };
        let limit = pool.multiplexes.max(1);
        let free = (0..count).map(|i| (start + i) % count).find(|&i| {
            let key = (gateway.to_string(), pool.numbers[i].clone());
            state.in_use.get(&key).copied().unwrap_or(0) < limit
        })?;
        let key = (gateway.to_string(), pool.numbers[free].clone());
        *state.in_use.entry(key.clone()).or_default() += 1;
        state
            .by_call
            .entry(call_id.to_string())
            .or_default()
            .push(key);
        state.next.insert(gateway.to_string(), (free + 1) % count);
        Some(pool.numbers[free].clone())
    }

    /// Give back every number `call_id` holds.
    pub(crate) fn release(&self, call_id: &str) {
        self.release_where(call_id, |_| true);
    }

    /// Give back the numbers `call_id` holds of the gateways `of` picks.
    pub(crate) fn release_where(&self, call_id: &str, of: impl Fn(&str) -> bool) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let held = state.by_call.remove(call_id).unwrap_or_default();
        let (back, kept): (Vec<_>, Vec<_>) = held.into_iter().partition(|(g, _)| of(g));
        for key in back {
            if let Some(n) = state.in_use.get_mut(&key) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    state.in_use.remove(&key);
                }
            }
        }
        if !kept.is_empty() {
            state.by_call.insert(call_id.to_string(), kept);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(selection: PoolSelection, multiplexes: u32) -> CallerPool {
        CallerPool {
            numbers: vec!["100".into(), "200".into()],
            selection,
            multiplexes,
            required: false,
        }
    }

    #[test]
    fn round_robin_within_the_multiplex_limit_and_numbers_come_back() {
        let pools = Pools::default();
        let p = pool(PoolSelection::RoundRobin, 1);
        assert_eq!(pools.lease("g", &p, "c1").as_deref(), Some("100"));
        assert_eq!(pools.lease("g", &p, "c2").as_deref(), Some("200"));
        assert_eq!(
            pools.lease("g", &p, "c3"),
            None,
            "both numbers are at their limit"
        );
        pools.release("c1");
        assert_eq!(pools.lease("g", &p, "c4").as_deref(), Some("100"));
        // A call that answered on "g" gives back what it borrowed elsewhere only.
        let other = pool(PoolSelection::RoundRobin, 1);
        assert!(pools.lease("k", &other, "c2").is_some());
        pools.release_where("c2", |g| g != "g");
        assert_eq!(pools.lease("k", &other, "c5").as_deref(), Some("200"));
        assert_eq!(
            pools.lease("k", &other, "c7").as_deref(),
            Some("100"),
            "k's 100 came back"
        );
        assert_eq!(pools.lease("g", &p, "c6"), None, "c2 still holds g's 200");
        // Two calls per number: four leases before the pool is dry.
        let two = pool(PoolSelection::Random, 2);
        let lent: Vec<_> = (0..5)
            .map(|i| pools.lease("h", &two, &format!("d{i}")))
            .collect();
        assert_eq!(lent.iter().filter(|n| n.is_some()).count(), 4);
    }
}
