//! Gateway groups: routing gateways naming a group share its capacity, and a call's
//! first attempt may not take the group's last `reserved` lines, which stay for
//! failover and protect-route attempts (the reading of VOS3000's "reserved line"
//! the spec infers). Usage is the group's gateways' calls in progress as the host
//! reports them when the call is routed.

use std::collections::HashMap;

use switchyard_sdk::{GroupSettings, Host};

/// The groups a call's candidates belong to, read once per call.
pub struct Groups<'h> {
    host: &'h dyn Host,
    /// Calls in progress per group name (read on first need).
    usage: Option<HashMap<String, u32>>,
    settings: HashMap<String, Option<GroupSettings>>,
}

impl<'h> Groups<'h> {
    /// Nothing read yet.
    pub fn new(host: &'h dyn Host) -> Self {
        Groups {
            host,
            usage: None,
            settings: HashMap::new(),
        }
    }

    /// Why a gateway in `groups` may not take the call, if it may not; `first` says
    /// the attempt is the call's first on a normal route (which may not use reserved
    /// lines), not a failover or a protect route.
    pub fn refusal(&mut self, groups: &[String], first: bool) -> Option<String> {
        for name in groups {
            let host = self.host;
            let Some(group) = self
                .settings
                .entry(name.clone())
                .or_insert_with(|| host.gateway_group(name).ok())
                .clone()
            else {
                continue;
            };
            if group.capacity == 0 {
                continue;
            }
            let used = self.usage().get(name).copied().unwrap_or(0);
            if used >= group.capacity {
                return Some(format!("group {name} is full ({used} calls)"));
            }
            if first && used + group.reserved >= group.capacity {
                let free = group.capacity - used;
                return Some(format!(
                    "group {name}: its {free} free lines are reserved for failover"
                ));
            }
        }
        None
    }

    fn usage(&mut self) -> &HashMap<String, u32> {
        let host = self.host;
        self.usage.get_or_insert_with(|| {
            let mut usage = HashMap::new();
            for gateway in host.gateways() {
                for group in &gateway.groups {
                    *usage.entry(group.clone()).or_default() += gateway.current_calls;
                }
            }
            usage
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::gateway;
    use switchyard_sdk::fake::FakeHost;
    use switchyard_sdk::Gateway;

    fn in_group(id: &str, calls: u32) -> Gateway {
        Gateway {
            groups: vec!["g".into()],
            ..gateway(id, true, calls, 0, 1)
        }
    }

    #[test]
    fn the_first_attempt_leaves_the_reserved_lines_and_a_full_group_takes_none() {
        let host = FakeHost::new()
            .with_gateway_record(in_group("a", 5))
            .with_gateway_record(in_group("b", 3))
            .with_gateway_record(gateway("c", true, 9, 0, 1))
            .with_group("g", 10, 2);
        let mut groups = Groups::new(&host);
        let g = ["g".to_string()];
        // 8 of 10 in use, 2 reserved: not for a first attempt, yes for a failover.
        assert!(groups
            .refusal(&g, true)
            .is_some_and(|w| w.contains("reserved")));
        assert_eq!(groups.refusal(&g, false), None);
        assert_eq!(groups.refusal(&[], true), None);
        assert_eq!(groups.refusal(&["unknown".to_string()], true), None);
        let full = FakeHost::new()
            .with_gateway_record(in_group("a", 10))
            .with_group("g", 10, 0);
        assert_eq!(
            Groups::new(&full).refusal(&g, false).as_deref(),
            Some("group g is full (10 calls)")
        );
    }
}
