//! The IKE task's gateways, with indexes by name and by policy: the engine's events name
//! a gateway or a tunnel's proxy ID, and a walk over every gateway per event made a
//! configuration of thousands of gateways (one per branch office) quadratic.

use std::collections::HashMap;
use std::ops::Deref;

use crate::ikecfg::GatewayInfo;

/// The gateways in configuration order (as a slice) and their indexes.
#[derive(Default, Clone)]
pub(crate) struct Gateways {
    list: Vec<GatewayInfo>,
    by_name: HashMap<String, usize>,
    /// tunnel → proxy ID → (gateway, position in its policies), the first if repeated.
    by_policy: HashMap<String, HashMap<String, (usize, usize)>>,
}

impl Gateways {
    pub(crate) fn new(list: Vec<GatewayInfo>) -> Self {
        let mut by_name = HashMap::with_capacity(list.len());
        let mut by_policy: HashMap<String, HashMap<String, (usize, usize)>> = HashMap::new();
        for (g, gw) in list.iter().enumerate() {
            by_name.entry(gw.name.clone()).or_insert(g);
            for (i, p) in gw.policies.iter().enumerate() {
                by_policy
                    .entry(p.tunnel.clone())
                    .or_default()
                    .entry(p.proxy_id.clone())
                    .or_insert((g, i));
            }
        }
        Gateways {
            list,
            by_name,
            by_policy,
        }
    }

    /// The position of the gateway named `name` (the first, were names repeated).
    pub(crate) fn index_of(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// The gateway and the position in its policies of the proxy ID `proxy_id` of tunnel
    /// `tunnel` (the first, were the pair repeated).
    pub(crate) fn policy(&self, tunnel: &str, proxy_id: &str) -> Option<(usize, usize)> {
        self.by_policy.get(tunnel)?.get(proxy_id).copied()
    }
}

impl Gateways {
    /// Follows an FQDN peer to the address its name resolves to now (not indexed).
    pub(crate) fn set_peer_address(&mut self, gw: usize, addr: Option<std::net::IpAddr>) {
        if let Some(g) = self.list.get_mut(gw) {
            g.peer_address = addr;
        }
    }
}

impl Deref for Gateways {
    type Target = [GatewayInfo];

    fn deref(&self) -> &[GatewayInfo] {
        &self.list
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ike::tests_tables::gw;

    fn policy(tunnel: &str, proxy_id: &str) -> crate::ikecfg::PolicyInfo {
        crate::ikecfg::PolicyInfo {
            tunnel: tunnel.into(),
            proxy_id: proxy_id.into(),
            lifetime: std::time::Duration::from_secs(3600),
            replay_window: None,
            lifesize: None,
            local: ferrosec_ike::ts::TsSet::default(),
        }
    }

    #[test]
    fn names_and_policies_are_found_as_a_walk_would_find_them() {
        let mut list = Vec::new();
        for g in 0..50 {
            let mut info = gw(None, None);
            info.name = format!("gw{}", g % 40);
            info.policies = (0..3)
                .map(|i| policy(&format!("t{}", g % 45), &format!("p{i}")))
                .collect();
            list.push(info);
        }
        let walk_name = |name: &str| list.iter().position(|g| g.name == name);
        let walk_policy = |t: &str, p: &str| {
            list.iter().enumerate().find_map(|(g, gw)| {
                gw.policies
                    .iter()
                    .position(|x| x.tunnel == t && x.proxy_id == p)
                    .map(|i| (g, i))
            })
        };
        let expected: Vec<_> = (0..60)
            .map(|n| {
                let name = format!("gw{n}");
                let (t, p) = (format!("t{n}"), format!("p{}", n % 4));
                (walk_name(&name), walk_policy(&t, &p), name, t, p)
            })
            .collect();
        let gws = Gateways::new(list.clone());
        assert_eq!(gws.len(), 50);
        for (name_at, policy_at, name, t, p) in expected {
            assert_eq!(gws.index_of(&name), name_at, "{name}");
            assert_eq!(gws.policy(&t, &p), policy_at, "{t}/{p}");
        }
        // Repeated names and tunnels: the first wins, as in a walk.
        assert_eq!(gws.index_of("gw3"), Some(3));
        assert_eq!(gws.policy("t3", "p2"), Some((3, 2)));
    }
}
