//! FQDN peers resolved again (R-CFG-4): every `[global] fqdn-refresh`, before each negotiation
//! the gateway starts, and when the peer stops answering, so that a peer on dynamic DNS is
//! followed. strongSwan resolves at every initiation; PAN-OS refreshes FQDN objects on a
//! timer; ferrosec does both.
//!
//! A lookup runs as its own task (the system resolver, bounded by [`LOOKUP_WAIT`]) and comes
//! back as [`Command::PeerResolved`]; at most one per gateway is in flight. A new address is
//! given to the engine ([`ferrosec_ike::Ike::set_peer_address`]): new negotiations go there, a
//! dead peer is restarted there, and a peer negotiating from there is recognized. SAs up keep
//! the address they run on. A name that stops resolving keeps the last address; one that
//! never resolved leaves the gateway waiting (it answers nobody) and is tried again every
//! [`UNRESOLVED_RETRY`] at most.

use super::*;

/// Longest one lookup may take.
const LOOKUP_WAIT: Duration = Duration::from_secs(5);
use crate::ikecfg::UNRESOLVED_RETRY;
/// A lookup asked for by a negotiation or a dead peer is not repeated within this.
const NUDGE_EVERY: Duration = Duration::from_secs(5);

/// Per FQDN gateway: when its name is due again, when the last lookup started, and whether
/// the last one failed (to log the change, not every failure).
#[derive(Debug, Default)]
pub(super) struct Resolving {
    due: BTreeMap<String, Instant>,
    started: BTreeMap<String, Instant>,
    in_flight: BTreeSet<String>,
    failing: BTreeSet<String>,
    /// `[global] fqdn-refresh`.
    every: Duration,
}

impl Resolving {
    pub(super) fn new(every: Duration) -> Self {
        Resolving {
            every,
            ..Resolving::default()
        }
    }
}

impl IkeTask {
    /// `[global] fqdn-refresh`; the first lookups are due one interval after start (the names
    /// were resolved at start), or soon for names that did not resolve.
    pub(crate) fn with_fqdn_refresh(mut self, every: Duration) -> Self {
        self.resolving = Resolving::new(every.max(Duration::from_secs(1)));
        let now = Instant::now();
        for g in self.gateways.iter() {
            if g.fqdn.is_some() {
                let wait = match g.peer_address {
                    Some(_) => self.resolving.every,
                    None => self.resolving.every.min(UNRESOLVED_RETRY),
                };
                self.resolving.due.insert(g.name.clone(), now + wait);
            }
        }
        self
    }

    /// Starts the lookups that are due (called once a second).
    pub(super) fn resolve_due(&mut self, now: Instant) {
        let due: Vec<usize> = self
            .gateways
            .iter()
            .enumerate()
            .filter(|(_, g)| g.fqdn.is_some())
            .filter(|(_, g)| self.resolving.due.get(&g.name).is_none_or(|at| *at <= now))
            .map(|(i, _)| i)
            .collect();
        for gw in due {
            self.lookup(gw, now);
        }
    }

    /// Resolves gateway `gw`'s name now (a negotiation starts, or the peer stopped
    /// answering), unless that was done within [`NUDGE_EVERY`].
    pub(super) fn resolve_soon(&mut self, gw: usize) {
        let now = Instant::now();
        let Some(g) = self.gateways.get(gw) else {
            return;
        };
        if g.fqdn.is_none()
            || self
                .resolving
                .started
                .get(&g.name)
                .is_some_and(|t| now.saturating_duration_since(*t) < NUDGE_EVERY)
        {
            return;
        }
        self.lookup(gw, now);
    }

    /// Starts one lookup of gateway `gw`'s name; the answer comes back as a command.
    fn lookup(&mut self, gw: usize, now: Instant) {
        let g = &self.gateways[gw];
        let Some((name, family)) = g.fqdn.clone() else {
            return;
        };
        let gateway = g.name.clone();
        self.resolving
            .due
            .insert(gateway.clone(), now + self.resolving.every);
        if !self.resolving.in_flight.insert(gateway.clone()) {
            return;
        }
        self.resolving.started.insert(gateway.clone(), now);
        let Some(tx) = self.commands_tx.as_ref().and_then(|t| t.upgrade()) else {
            self.resolving.in_flight.remove(&gateway);
            return;
        };
        tokio::spawn(async move {
            let result = match tokio::time::timeout(
                LOOKUP_WAIT,
                tokio::net::lookup_host((name.as_str(), ferrosec_ike::v2::IKE_PORT)),
            )
            .await
            {
                Err(_) => Err(format!("no answer within {} s", LOOKUP_WAIT.as_secs())),
                Ok(Err(e)) => Err(e.to_string()),
                Ok(Ok(addrs)) => addrs
                    .map(|a| a.ip())
                    .find(|a| ferrosec_config::algo::AddressFamily::of(*a) == family)
                    .ok_or_else(|| format!("it has no {family} address")),
            };
            let _ = tx
                .send(Command::PeerResolved {
                    gateway,
                    name,
                    result,
                })
                .await;
        });
    }

    /// A lookup's answer: a new address goes to the engine and the system log; a failure is
    /// logged when it starts and when it ends.
    pub(super) fn peer_resolved(
        &mut self,
        gateway: &str,
        name: &str,
        result: Result<IpAddr, String>,
    ) {
        self.resolving.in_flight.remove(gateway);
        let Some(gw) = self.gateway_index(gateway) else {
            return;
        };
        if self.gateways[gw].fqdn.as_ref().map(|(n, _)| n.as_str()) != Some(name) {
            return; // a reload changed the gateway meanwhile
        }
        let obj = format!("ike-gateway {gateway}");
        let old = self.gateways[gw].peer_address;
        match result {
            Ok(addr) => {
                self.resolving.failing.remove(gateway);
                if old == Some(addr) {
                    return;
                }
                if let Err(e) =
                    self.endpoint
                        .set_peer_address(Instant::now(), self.ids[gw].0, Some(addr))
                {
                    tracing::debug!("{obj}: new peer address {addr}: {e}");
                    return;
                }
                self.gateways.set_peer_address(gw, Some(addr));
                let was = match old {
                    Some(a) => format!("was {a}"),
                    None => "it did not resolve before".to_owned(),
                };
                self.log.record(
                    Severity::Info,
                    &obj,
                    format!(
                        "peer-address \"{name}\" now resolves to {addr} ({was}); new \
                         negotiations go there"
                    ),
                );
            }
            Err(why) => {
                if old.is_none() {
                    let now = Instant::now();
                    let retry = now + self.resolving.every.min(UNRESOLVED_RETRY);
                    self.resolving.due.insert(gateway.to_owned(), retry);
                }
                if self.resolving.failing.insert(gateway.to_owned()) {
                    let keep = match old {
                        Some(a) => format!("keeping {a}"),
                        None => "the gateway waits for it and answers nobody".to_owned(),
                    };
                    self.log.record(
                        Severity::Warning,
                        &obj,
                        format!("peer-address \"{name}\" does not resolve: {why}; {keep}"),
                    );
                }
            }
        }
    }
}
