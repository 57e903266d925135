//! Live reload (R-OPS-4): the two halves of a reload around the IKE task's part, and how
//! each change is reported.

use super::*;

impl Daemon {
    /// A reload, first half (under the lock): loads and checks the file; a broken one is
    /// rejected and changes nothing. Then what goes goes first: the routes the new file no
    /// longer has (before any SA, so that traffic moves to what is left), and the monitors
    /// of tunnels that go or change. `Ok(None)`: nothing changed.
    pub(super) fn reload_prepare(&mut self) -> Result<Option<Prepared>, String> {
        let path = self.config_path.display().to_string();
        let loaded = match ferrosec_config::load_file(&self.config_path) {
            Ok(l) => l,
            Err(e) => {
                let why = format!("reload rejected, the running configuration stays in force: {e}");
                self.log.record(Severity::Error, "daemon", why.clone());
                return Err(why);
            }
        };
        for w in &loaded.warnings {
            self.log.record(Severity::Warning, "config", w.to_string());
        }
        let config = loaded.config;
        let changes = crate::reload::changes(&self.running, &config);
        if changes.is_empty() {
            self.log.record(
                Severity::Info,
                "daemon",
                format!("configuration reloaded from {path}: no change"),
            );
            return Ok(None);
        }
        let setup = crate::ikecfg::engine_setup(&config, &crate::ikecfg::system_resolve);
        for u in setup
            .unserved
            .iter()
            .filter(|u| u.impact == crate::served::Impact::NotServed)
        {
            self.log.record(Severity::Error, &u.object(), u.detail());
        }
        for (gw, why) in &setup.skipped {
            self.log
                .record(Severity::Error, &format!("ike-gateway {gw}"), why.clone());
        }
        for (gw, name) in &setup.unresolved {
            self.log.record(
                Severity::Warning,
                &format!("ike-gateway {gw}"),
                crate::ikecfg::unresolved_words(name, config.global.fqdn_refresh),
            );
        }
        let mut manual = Vec::new();
        for m in crate::manual::manual_sas(&config) {
            match m {
                Ok(m) => manual.push(m),
                Err((tunnel, why)) => {
                    self.log
                        .record(Severity::Error, &format!("ipsec-tunnel {tunnel}"), why)
                }
            }
        }
        let (plans, interfaces) = tunnel_plans(&config, &setup, &manual);
        let mut done: Vec<(String, String)> = Vec::new();
        // Routes the new file does not have any more go first.
        let (wanted, vr_pieces) = if self.has_dataplane {
            let devices: Vec<&str> = plans.iter().map(|p| p.interface.as_str()).collect();
            (
                wanted_routes(&config, &plans),
                crate::vrtables::wanted(&config, &devices, &crate::vrtables::interface_addresses),
            )
        } else {
            (Vec::new(), Vec::new())
        };
        let gone = self
            .routes
            .take(|router, route| !wanted.iter().any(|(r, w)| r == router && w == route));
        for (router, route, active) in gone {
            let what = if !active {
                format!("route {route} forgotten (it was withdrawn)")
            } else {
                match ferrosec_netio::delete_route(&route) {
                    Ok(()) => format!("route {route} removed"),
                    Err(e) => format!("route {route} not removed: {e}"),
                }
            };
            done.push((format!("virtual-router {router}"), what.clone()));
            if let Some(t) = route_tunnel(&self.running, &route.interface) {
                done.push((t, what));
            }
        }
        // Rules and table routes of virtual routers that go or change, after their routes.
        done.extend(self.vr_tables.remove_gone(&vr_pieces, &self.log));
        // Monitors of tunnels that go or change stop now (auto-key tunnels, as at start).
        let served: std::collections::BTreeSet<String> = setup
            .gateways
            .iter()
            .flat_map(|g| g.policies.iter().map(|p| p.tunnel.clone()))
            .collect();
        let targets = crate::monitor::targets(&config, |t| served.contains(t));
        let stop: Vec<String> = self
            .monitor_tasks
            .iter()
            .filter(|(t, (target, _))| !targets.iter().any(|n| n.tunnel == **t && n == target))
            .map(|(t, _)| t.clone())
            .collect();
        for t in stop {
            if let Some((target, task)) = self.monitor_tasks.remove(&t) {
                task.abort();
                self.monitors.remove(&t);
                // A fail-over monitor may have withdrawn the routes of a tunnel that stays.
                self.routes.restore(&target.interface, &self.log);
                done.push((
                    format!("ipsec-tunnel {t}"),
                    "tunnel monitor stopped".to_owned(),
                ));
            }
        }
        let always_on: Vec<String> = config
            .ipsec_tunnels
            .values()
            .filter(|t| t.always_on && served.contains(&t.name))
            .map(|t| t.name.clone())
            .collect();
        let changed_gateways = changes
            .iter()
            .filter(|c| c.kind == "ike-gateway" && c.what == "changed")
            .map(|c| c.name.clone())
            .collect();
        let is_manual = |c: &Config, t: &str| {
            c.ipsec_tunnels
                .get(t)
                .is_some_and(|t| matches!(t.keying, Keying::ManualKey(_)))
        };
        let manual_changed = changes
            .iter()
            .filter(|c| {
                c.kind == "ipsec-tunnel"
                    && (is_manual(&config, &c.name) || is_manual(&self.running, &c.name))
            })
            .map(|c| c.name.clone())
            .collect();
        let plan = crate::ike::ReloadPlan {
            setup,
            changed_gateways,
            tunnels: plans,
            interfaces,
            always_on,
            manual_changed,
            manual,
        };
        Ok(Some(Prepared {
            config,
            changes,
            plan,
            wanted,
            vr_pieces,
            targets,
            done,
        }))
    }

    /// A reload, second half (under the lock, after the IKE task applied its part, `ike`):
    /// the new routes (their devices exist now), the security policy, the new monitors, and
    /// one system log line per object saying what was done. Returns those lines.
    pub(super) fn reload_finish(&mut self, p: Prepared, ike: crate::ike::Done) -> Vec<String> {
        let Prepared {
            config,
            changes,
            plan: _,
            wanted,
            vr_pieces,
            targets,
            mut done,
        } = p;
        done.extend(ike);
        // The virtual routers' own tables (their tunnels' devices exist now), then their
        // routes.
        done.extend(self.vr_tables.install(vr_pieces, &self.log));
        // Routes through the tunnels' devices.
        let have = self.routes.routes();
        for (router, route) in wanted {
            if have.iter().any(|(r, w)| *r == router && *w == route) {
                continue;
            }
            let what = match ferrosec_netio::replace_route(&route) {
                Ok(()) => {
                    let w = format!("route {route} installed");
                    self.routes.installed(&router, route.clone());
                    w
                }
                Err(e) => format!("route {route} not installed: {e}"),
            };
            done.push((format!("virtual-router {router}"), what.clone()));
            if let Some(t) = route_tunnel(&config, &route.interface) {
                done.push((t, what));
            }
        }
        // Zones and rules: compiled anew when they or the tunnel interfaces changed.
        if changes
            .iter()
            .any(|c| matches!(c.kind, "zone" | "security-rule" | "tunnel-interface"))
        {
            self.policy
                .replace(crate::policy::Policy::new(&config, &connected_prefixes));
            for c in changes
                .iter()
                .filter(|c| matches!(c.kind, "zone" | "security-rule"))
            {
                done.push((
                    format!("{} {}", c.kind, c.name),
                    "in force for the next packet (SAs untouched)".to_owned(),
                ));
            }
        }
        // Monitors of new and changed tunnels.
        if let Some(links) = &self.monitor_links {
            let start: Vec<crate::monitor::Target> = targets
                .into_iter()
                .filter(|t| !self.monitor_tasks.contains_key(&t.tunnel))
                .collect();
            let n = start.len();
            for (t, task) in crate::monitor::spawn(start.clone(), self.monitors_started, links) {
                done.push((
                    format!("ipsec-tunnel {t}"),
                    "tunnel monitor started".to_owned(),
                ));
                if let Some(target) = start.iter().find(|x| x.tunnel == t) {
                    self.monitor_tasks.insert(t, (target.clone(), task));
                }
            }
            self.monitors_started += n;
        }
        for c in &changes {
            let what = match c.kind {
                "global" => {
                    Some("not applied live: [global] settings take effect at the next restart")
                }
                _ => None,
            };
            if let Some(w) = what {
                done.push((
                    format!("{} {}", c.kind, c.name).trim().to_owned(),
                    w.to_owned(),
                ));
            }
        }
        // One line per object: the changes first, in file order, then the objects they
        // touched.
        let mut lines = Vec::new();
        let mut said = std::collections::BTreeSet::new();
        let words = |obj: &str| -> Vec<String> {
            done.iter()
                .filter(|(o, _)| o == obj)
                .map(|(_, w)| w.clone())
                .collect()
        };
        for c in &changes {
            let obj = format!("{} {}", c.kind, c.name).trim().to_owned();
            let w = words(&obj);
            lines.push(format!(
                "reload: {c}: {}",
                if w.is_empty() {
                    applied_through(c.kind, c.what).to_owned()
                } else {
                    w.join(", ")
                }
            ));
            said.insert(obj);
        }
        for (obj, _) in &done {
            if said.insert(obj.clone()) {
                lines.push(format!("reload: {obj}: {}", words(obj).join(", ")));
            }
        }
        for l in &lines {
            self.log.record(severity_of(l), "daemon", l.clone());
        }
        let summary = format!(
            "configuration reloaded from {}: {} change(s) applied",
            self.config_path.display(),
            changes.len()
        );
        self.log.record(Severity::Info, "daemon", summary.clone());
        lines.push(summary);
        self.view = View::of(&config);
        self.running = config;
        lines
    }
}

/// A reload between its two halves (see [`Daemon::reload_prepare`]).
pub(super) struct Prepared {
    config: Config,
    changes: Vec<crate::reload::Change>,
    plan: crate::ike::ReloadPlan,
    /// The routes the new file wants through the tunnels' devices.
    wanted: Vec<(String, ferrosec_netio::Route)>,
    /// What the new file's virtual routers need for their own tables (crate::vrtables).
    vr_pieces: Vec<(String, crate::vrtables::Piece)>,
    /// The tunnel monitors of the new file.
    targets: Vec<crate::monitor::Target>,
    /// What was done so far, per object.
    done: Vec<(String, String)>,
}

/// SIGHUP and `request system reload` (R-OPS-4): loads the file again and applies it object
/// by object (see docs/operations.md): routes that go are removed first, then the IKE task
/// deletes, renegotiates, rekeys and adds what changed (unchanged gateways and tunnels keep
/// their SAs), creates new TUN devices, then new routes go in, the security policy is
/// compiled anew, new monitors start. A broken file changes nothing. Returns what was done,
/// one line per object (also in the system log).
pub(super) async fn reload(daemon: &Arc<Mutex<Daemon>>) -> Result<String, String> {
    let gate = Arc::clone(&lock(daemon).reloading);
    let _one_at_a_time = gate.lock().await;
    let (prepared, ike) = {
        let mut d = lock(daemon);
        let Some(p) = d.reload_prepare()? else {
            return Ok("no change".to_owned());
        };
        let ike = d.ike.clone();
        (p, ike)
    };
    let mut prepared = prepared;
    let done = match ike {
        Some(ike) => {
            let plan = std::mem::replace(&mut prepared.plan, empty_plan());
            let (tx, rx) = tokio::sync::oneshot::channel();
            let sent = ike
                .send(Command::Reload {
                    plan: Box::new(plan),
                    reply: tx,
                })
                .await;
            match (sent, tokio::time::timeout(TEST_WAIT, rx).await) {
                (Ok(()), Ok(Ok(done))) => done,
                _ => vec![(
                    "daemon".to_owned(),
                    "the IKE task did not answer the reload: gateways and tunnels may be \
                     partly applied; see show vpn ike-sa"
                        .to_owned(),
                )],
            }
        }
        None => vec![(
            "daemon".to_owned(),
            "no IKE gateway or tunnel was served at start, so none can be added live: restart \
             the daemon to serve the new ones"
                .to_owned(),
        )],
    };
    let lines = lock(daemon).reload_finish(prepared, done);
    Ok(lines.join("\n"))
}

pub(super) fn empty_plan() -> crate::ike::ReloadPlan {
    crate::ike::ReloadPlan {
        setup: crate::ikecfg::EngineSetup {
            endpoint: Default::default(),
            peers: Vec::new(),
            gateways: Vec::new(),
            unserved: Vec::new(),
            skipped: Vec::new(),
            unresolved: Vec::new(),
        },
        changed_gateways: Default::default(),
        tunnels: Vec::new(),
        interfaces: Default::default(),
        always_on: Vec::new(),
        manual_changed: Default::default(),
        manual: Vec::new(),
    }
}

/// The tunnel whose interface a route goes through (`ipsec-tunnel t1`), for the log.
pub(super) fn route_tunnel(config: &Config, interface: &str) -> Option<String> {
    config
        .ipsec_tunnels
        .values()
        .find(|t| t.tunnel_interface == interface)
        .map(|t| format!("ipsec-tunnel {}", t.name))
}

/// A reload line that says something was not done is a warning.
pub(super) fn severity_of(line: &str) -> Severity {
    const NOT_DONE: [&str; 8] = [
        "not installed",
        "not removed",
        "not replaced",
        "not applied live",
        "does not listen",
        "did not answer",
        "can be added live",
        "no data plane",
    ];
    if NOT_DONE.iter().any(|w| line.contains(w)) {
        Severity::Warning
    } else {
        Severity::Info
    }
}

/// What a reload says of a changed object that nothing running depends on by itself.
pub(super) fn applied_through(kind: &str, what: &str) -> &'static str {
    match (kind, what) {
        ("ike-crypto-profile", _) => "applied through the gateways that use it",
        ("ipsec-crypto-profile", _) => "applied through the tunnels that use it",
        ("monitor-profile", _) => "applied through the tunnel monitors that use it",
        ("tunnel-interface", "changed") => {
            "tcp-mss-clamp in force for the next packet; MTU and addresses take effect when \
             its device is created again (when its tunnels are removed and added back, or at \
             restart)"
        }
        ("virtual-router", _) => "no route through a tunnel changed",
        ("ike-gateway", "added") => "served",
        (_, "removed") => "removed",
        _ => "nothing running needed a change",
    }
}
