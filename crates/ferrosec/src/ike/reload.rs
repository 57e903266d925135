//! A reloaded configuration applied to the IKE task (R-OPS-4), gateway by gateway:
//!
//! - a gateway that is gone: its IKE SAs are deleted on the peer (DELETE sent) and here, its
//!   Child SAs leave the data plane, its configuration leaves the engines;
//! - a gateway whose own settings changed (the `ike-gateway` object or its IKE crypto
//!   profile, or the address its peer resolves to): the same, then it is added again with
//!   the new settings and negotiated again at once when it had an IKE SA (a new IKE SA needs
//!   new keys, so this is delete and re-create, as `swanctl --load-all` then `--initiate`);
//! - a gateway that stays: its policies are replaced in the engines
//!   ([`ferrosec_ike::Ike::update_policies`]): an unchanged proxy ID keeps its SAs (same
//!   SPIs), a changed IPSec crypto profile rekeys the Child SAs with the new proposals
//!   (make-before-break), a proxy ID that is gone or whose selectors changed has its Child
//!   SAs deleted (DELETE sent), and a new or changed one is negotiated at once when its
//!   tunnel is up or always-on, on demand otherwise;
//! - a new gateway is added (a new peer ID: no other peer is renumbered).
//!
//! Then the data plane's TUN devices follow the tunnels (created for new tunnel interfaces;
//! an interface no tunnel uses any more goes with its last SA), and the always-on list
//! follows the file. What was done is returned as (object, words) for the system log.

use super::*;
use crate::dataplane::{InterfacePlan, TunnelPlan};

/// What the daemon hands the IKE task for a reload.
#[derive(Debug)]
pub(crate) struct ReloadPlan {
    /// The engine settings of the new file.
    pub(crate) setup: EngineSetup,
    /// Gateways whose `ike-gateway` object (with its IKE crypto profile) changed.
    pub(crate) changed_gateways: BTreeSet<String>,
    /// The data plane's tunnels and tunnel interfaces of the new file.
    pub(crate) tunnels: Vec<TunnelPlan>,
    pub(crate) interfaces: BTreeMap<String, InterfacePlan>,
    /// `establish = "always"` tunnels of the new file.
    pub(crate) always_on: Vec<String>,
    /// Manual-key tunnels added, changed or removed, and the new file's manual-key SA pairs
    /// of those that are there.
    pub(crate) manual_changed: BTreeSet<String>,
    pub(crate) manual: Vec<crate::manual::ManualSa>,
}

/// What a reload did, per object (`ipsec-tunnel t1`), in words.
pub(crate) type Done = Vec<(String, String)>;

impl IkeTask {
    /// Applies a reload (see the module docs).
    pub(super) fn reload(&mut self, plan: ReloadPlan) -> Done {
        let now = Instant::now();
        let mut done: Done = Vec::new();
        // Waiting `test` commands are put aside with their gateway's name, and follow it.
        let waiting: Vec<(Waiter, String)> = std::mem::take(&mut self.waiters)
            .into_iter()
            .map(|w| {
                let name = match &w.goal {
                    Goal::IkeUp { gateway } | Goal::TunnelUp { gateway, .. } => {
                        self.gateways[*gateway].name.clone()
                    }
                };
                (w, name)
            })
            .collect();
        let up_before = self.tables.proxy_ids_up_by_tunnel();
        let ReloadPlan {
            setup,
            changed_gateways,
            tunnels,
            interfaces,
            always_on,
            manual_changed,
            manual,
        } = plan;
        // Manual-key pairs that go or change leave the data plane first.
        let old_manual: Vec<(Spi, Spi, String)> = self
            .tables
            .lock()
            .child
            .iter()
            .filter(|(_, c)| c.manual && manual_changed.contains(&*c.slot.tunnel))
            .map(|(spi, c)| (*spi, c.outbound, c.slot.tunnel.to_string()))
            .collect();
        for (inbound, outbound, tunnel) in old_manual {
            self.tables.lock().remove_child(&inbound);
            if let Some(dp) = &self.dataplane {
                dp.remove(inbound, outbound, None);
            }
            done.push((
                format!("ipsec-tunnel {tunnel}"),
                format!("manual-key SA pair 0x{:08x} removed", inbound.0),
            ));
        }

        // Gateways that go, or go and come back with new settings.
        let mut renegotiate: BTreeSet<String> = BTreeSet::new();
        for (i, old) in self.gateways.clone().iter().enumerate() {
            let new = setup.gateways.iter().find(|g| g.name == old.name);
            let replaced = match new {
                None => false,
                Some(n) => {
                    changed_gateways.contains(&old.name)
                        || n.peer_address != old.peer_address
                        || n.local_address != old.local_address
                }
            };
            if new.is_some() && !replaced {
                continue;
            }
            let had_sa = self.established(i).is_some();
            let n = self.endpoint.remove_peer(now, self.ids[i].0).unwrap_or(0);
            self.former_ids.insert(self.ids[i].0, old.name.clone());
            // Down events now, while the gateway is still known here.
            while let Some(e) = self.endpoint.poll_event() {
                self.event(e);
            }
            self.forget_connecting(&old.name);
            let obj = format!("ike-gateway {}", old.name);
            if replaced {
                done.push((
                    obj,
                    if had_sa {
                        format!(
                            "settings changed: {n} IKE SA(s) deleted on the peer (DELETE sent) \
                             with their IPsec SAs"
                        )
                    } else {
                        "settings changed: no IKE SA was up; the new settings are used from \
                         the next negotiation"
                            .to_owned()
                    },
                ));
                if had_sa {
                    renegotiate.insert(old.name.clone());
                }
            } else {
                done.push((
                    obj,
                    format!("removed: {n} IKE SA(s) deleted on the peer (DELETE sent)"),
                ));
            }
            for t in old
                .policies
                .iter()
                .map(|p| &p.tunnel)
                .collect::<BTreeSet<_>>()
            {
                if up_before.contains_key(t.as_str()) {
                    done.push((
                        format!("ipsec-tunnel {t}"),
                        format!("IPsec SAs deleted with the IKE SA of {}", old.name),
                    ));
                }
            }
        }

        // The gateways of the new file, in its order.
        let mut ids = Vec::with_capacity(setup.gateways.len());
        let mut negotiate_now: BTreeSet<String> = BTreeSet::new();
        let mut rekeyed: BTreeSet<String> = BTreeSet::new();
        for (j, g) in setup.gateways.iter().enumerate() {
            let peer = setup.peers[j].clone();
            let kept = self
                .gateway_index(&g.name)
                .filter(|i| self.endpoint.peers().any(|(id, _)| id == self.ids[*i].0));
            let id = match kept {
                Some(i) => {
                    let id = self.ids[i].0;
                    let old_names: BTreeMap<PolicyId, String> = self
                        .endpoint
                        .peers()
                        .find(|(p, _)| *p == id)
                        .map(|(_, c)| {
                            c.policies
                                .iter()
                                .map(|p| (p.id(), p.name().to_owned()))
                                .collect()
                        })
                        .unwrap_or_default();
                    match self.endpoint.update_policies(now, id, peer.policies) {
                        Ok(u) => {
                            while let Some(e) = self.endpoint.poll_event() {
                                self.event(e);
                            }
                            let new_names: BTreeMap<PolicyId, String> = self
                                .endpoint
                                .peers()
                                .find(|(p, _)| *p == id)
                                .map(|(_, c)| {
                                    c.policies
                                        .iter()
                                        .map(|p| (p.id(), p.name().to_owned()))
                                        .collect()
                                })
                                .unwrap_or_default();
                            for (pid, n) in &u.rekeyed {
                                let (t, p) = split_policy(&new_names[pid]);
                                rekeyed.insert(t.to_owned());
                                done.push((
                                    format!("ipsec-tunnel {t}"),
                                    if *n == 0 {
                                        format!(
                                            "proxy-id {p}: new IPSec crypto settings, used \
                                             from the next negotiation (no IPsec SA up)"
                                        )
                                    } else {
                                        format!(
                                            "proxy-id {p}: rekey of {n} IPsec SA pair(s) with \
                                             the new IPSec crypto settings started \
                                             (make-before-break)"
                                        )
                                    },
                                ));
                            }
                            for (pid, n) in &u.removed {
                                let Some(name) = old_names.get(pid) else {
                                    continue;
                                };
                                let (t, p) = split_policy(name);
                                done.push((
                                    format!("ipsec-tunnel {t}"),
                                    format!(
                                        "proxy-id {p} removed or changed: {n} IPsec SA \
                                         pair(s) deleted (DELETE sent)"
                                    ),
                                ));
                            }
                            for pid in &u.added {
                                let (t, p) = split_policy(&new_names[pid]);
                                let now_up =
                                    up_before.contains_key(t) || always_on.iter().any(|a| a == t);
                                done.push((
                                    format!("ipsec-tunnel {t}"),
                                    format!(
                                        "proxy-id {p} added: {}",
                                        if now_up {
                                            "negotiating"
                                        } else {
                                            "negotiated on demand"
                                        }
                                    ),
                                ));
                                if now_up {
                                    negotiate_now.insert(t.to_owned());
                                }
                            }
                        }
                        Err(e) => done.push((
                            format!("ike-gateway {}", g.name),
                            format!("policies not replaced: {e}"),
                        )),
                    }
                    id
                }
                None => {
                    let fresh = !renegotiate.contains(&g.name)
                        && !changed_gateways.contains(&g.name)
                        && !self.gateways.iter().any(|o| o.name == g.name);
                    let id = self.endpoint.add_peer(peer);
                    if let Err(e) = self.endpoint.set_lifetimes(id, g.lifetimes) {
                        tracing::warn!("lifetimes of {}: {e}", g.name);
                    }
                    if let Some(cp) = &g.config_payload
                        && let Err(e) = self.endpoint.set_config_payload(id, cp.clone())
                    {
                        tracing::warn!("configuration payload of {}: {e}", g.name);
                    }
                    if let Some(c) = &g.certificates
                        && let Err(e) = self.endpoint.set_certificates(id, c.clone())
                    {
                        tracing::warn!("certificates of {}: {e}", g.name);
                    }
                    if let Some(v1) = g.ikev1 {
                        let served = if g.ikev2_preferred {
                            self.endpoint.serve_ikev2_preferred(id, v1)
                        } else {
                            self.endpoint.serve_ikev1(id, v1)
                        };
                        if let Err(e) = served {
                            tracing::warn!("IKEv1 for {}: {e}", g.name);
                        }
                    }
                    let listening = g.local_address.is_none_or(|a| {
                        self.ports
                            .iter()
                            .any(|p| p.serves(SocketAddr::new(a, ferrosec_ike::v2::IKE_PORT)))
                    });
                    if fresh {
                        done.push((
                            format!("ike-gateway {}", g.name),
                            if listening {
                                "added: served (negotiated on demand, by always-on or by \
                                 `test`)"
                                    .to_owned()
                            } else {
                                format!(
                                    "added, but ferrosec does not listen on {} (sockets are \
                                     bound at start): restart the daemon to serve it",
                                    g.local_address.map(|a| a.to_string()).unwrap_or_default()
                                )
                            },
                        ));
                        for t in g
                            .policies
                            .iter()
                            .map(|p| &p.tunnel)
                            .collect::<BTreeSet<_>>()
                        {
                            if always_on.iter().any(|a| a == t) {
                                negotiate_now.insert(t.clone());
                            }
                        }
                    }
                    id
                }
            };
            let policies = self
                .endpoint
                .peers()
                .find(|(p, _)| *p == id)
                .map(|(_, c)| c.policies.iter().map(ChildPolicy::id).collect())
                .unwrap_or_default();
            ids.push((id, policies));
        }
        // A changed anti-replay window belongs to the data plane's inbound SAs, not to the
        // engine's policy: the pairs of such a tunnel are rekeyed to get it.
        let replay_changed: BTreeSet<String> = setup
            .gateways
            .iter()
            .flat_map(|g| &g.policies)
            .filter(|n| {
                self.gateways.iter().flat_map(|g| &g.policies).any(|o| {
                    o.tunnel == n.tunnel
                        && o.proxy_id == n.proxy_id
                        && o.replay_window != n.replay_window
                })
            })
            .map(|p| p.tunnel.clone())
            .collect();
        self.gateways = super::gateways::Gateways::new(setup.gateways);
        self.ids = ids;
        self.tcp_reloaded();
        for t in replay_changed.difference(&rekeyed) {
            let pairs = self.pairs(Some(t));
            let n = pairs
                .into_iter()
                .filter(|(h, spi)| self.endpoint.rekey_child_sa(now, *h, *spi).is_ok())
                .count();
            done.push((
                format!("ipsec-tunnel {t}"),
                format!(
                    "anti-replay window changed: rekey of {n} IPsec SA pair(s) started to apply it"
                ),
            ));
        }
        self.child_requested.clear();
        {
            let mut names = std::mem::take(&mut self.names);
            self.tables.lock().liveness = self
                .endpoint
                .peers()
                .map(|(_, p)| (names.get(&p.name), p.liveness))
                .collect();
            self.names = names;
        }

        // Waiters follow their gateway by name; those of a gateway that is gone are told.
        for (mut w, name) in waiting {
            match self.gateway_index(&name) {
                Some(i) => {
                    match &mut w.goal {
                        Goal::IkeUp { gateway } => *gateway = i,
                        Goal::TunnelUp {
                            gateway, requested, ..
                        } => {
                            // Policy positions may have moved: ask again for what is missing.
                            *gateway = i;
                            requested.clear();
                        }
                    }
                    self.waiters.push(w);
                }
                None => {
                    let _ = w.reply.send(Err(format!(
                        "ike-gateway \"{name}\" was removed by a reload"
                    )));
                }
            }
        }

        // Tunnel devices.
        if let Some(dp) = &mut self.dataplane {
            // Tunnels that move to another interface: their SAs are in the old device's
            // worker, so they are rekeyed into the new one (make-before-break).
            let moved: Vec<String> = tunnels
                .iter()
                .filter(|t| dp.interface_of(&t.tunnel).is_some_and(|i| i != t.interface))
                .map(|t| t.tunnel.clone())
                .collect();
            let changes = dp.set_tunnels(&tunnels, &interfaces);
            for i in changes.created {
                done.push((format!("tunnel-interface {i}"), "device created".to_owned()));
                for t in tunnels.iter().filter(|t| t.interface == i) {
                    done.push((
                        format!("ipsec-tunnel {}", t.tunnel),
                        format!("tunnel interface {i} created"),
                    ));
                }
            }
            for t in moved {
                let pairs = self.pairs(Some(&t));
                let n = pairs
                    .into_iter()
                    .filter(|(h, spi)| self.endpoint.rekey_child_sa(now, *h, *spi).is_ok())
                    .count();
                done.push((
                    format!("ipsec-tunnel {t}"),
                    format!(
                        "moved to another tunnel interface: rekey of {n} IPsec SA pair(s) \
                         started to carry its traffic there"
                    ),
                ));
            }
            for i in changes.removed {
                done.push((
                    format!("tunnel-interface {i}"),
                    "device removed (it goes with its last IPsec SA)".to_owned(),
                ));
            }
            for e in changes.errors {
                done.push(("daemon".to_owned(), e));
            }
        }

        // Manual-key pairs of the tunnels added or changed (their devices exist now).
        for m in manual.iter().filter(|m| manual_changed.contains(&m.tunnel)) {
            let obj = format!("ipsec-tunnel {}", m.tunnel);
            let Some(dp) = &self.dataplane else {
                done.push((
                    obj,
                    "manual-key SA pair not installed: no data plane".to_owned(),
                ));
                continue;
            };
            let counters = Arc::new(crate::counters::SaCounters::default());
            match dp.install(
                &m.tunnel,
                &m.info,
                m.replay_window,
                None,
                Arc::clone(&counters),
                false,
            ) {
                Ok(_) => {
                    self.tables.insert_manual(&m.tunnel, &m.info, counters);
                    done.push((
                        obj,
                        format!(
                            "manual-key SA pair installed: SPI in 0x{:08x} out 0x{:08x}",
                            m.info.inbound_spi.0, m.info.outbound_spi.0
                        ),
                    ));
                }
                Err(e) => done.push((obj, format!("manual-key SA pair not installed: {e}"))),
            }
        }

        // Always-on tunnels: those kept keep their back-off.
        let old_always = std::mem::take(&mut self.always_on);
        self.always_on = always_on
            .into_iter()
            .map(|t| {
                old_always
                    .iter()
                    .find(|(o, _, _)| *o == t)
                    .cloned()
                    .unwrap_or((t, now, ALWAYS_ON_FIRST_RETRY))
            })
            .collect();

        // Negotiate what was up (or is always-on) and lost its SAs to the reload.
        for name in renegotiate {
            if let Some(gw) = self.gateway_index(&name)
                && self.established(gw).is_none()
                && !self.connecting(gw)
            {
                match self.initiate(gw, "reload: the gateway's settings changed") {
                    Ok(()) => done.push((
                        format!("ike-gateway {name}"),
                        "negotiating again with the new settings".to_owned(),
                    )),
                    Err(e) => done.push((format!("ike-gateway {name}"), e)),
                }
            }
        }
        for t in negotiate_now {
            self.bring_up(&t, &format!("reload: ipsec-tunnel {t}"));
        }
        done
    }

    /// Drops the table entries of IKE SAs of `gateway` still being negotiated (the engine
    /// forgot them without an event).
    fn forget_connecting(&mut self, gateway: &str) {
        let mut t = self.tables.lock();
        let gone: Vec<IkeSaHandle> = t
            .ike
            .iter()
            .filter(|(_, e)| &*e.gateway == gateway)
            .map(|(h, _)| *h)
            .collect();
        for h in gone {
            t.remove_ike(&h);
        }
    }
}
