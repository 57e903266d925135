//! The virtual router's routes that the daemon installed on the host, shared by the daemon
//! (installs them at start, removes them at shutdown, shows them) and the tunnel monitors (a
//! `fail-over` monitor withdraws the routes through its tunnel's interface and restores them).
//!
//! An IPv6 monitor's probes need a route through the tunnel's interface (for IPv6 the kernel
//! has no on-link fallback for a socket bound to an interface, as it has for IPv4): while the
//! routes are withdrawn, a host route to the monitor's destination through that interface is
//! kept ("pinned") and taken out again when the routes are restored.
//!
//! Once [`RouteBook::close`] has run (shutdown), nothing is restored any more: no route is
//! left behind after SIGTERM.

use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use ferrosec_netio::Route;

use crate::syslog::{Severity, SharedLog};

#[derive(Debug)]
struct Installed {
    router: String,
    route: Route,
    /// In the routing table now (false: withdrawn by a monitor).
    active: bool,
    /// A host route for a monitor's probes, only while the others are withdrawn.
    pinned: bool,
}

#[derive(Debug, Default)]
struct Book {
    routes: Vec<Installed>,
    closed: bool,
}

/// Whether an interface's routes are in the routing table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RoutesState {
    /// Every route we installed through it is there.
    Active,
    /// A monitor withdrew them (at least one).
    Withdrawn,
    /// We installed no route through it.
    None,
}

impl RoutesState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Withdrawn => "withdrawn",
            Self::None => "none",
        }
    }
}

/// The installed routes, shared.
#[derive(Debug, Clone, Default)]
pub(crate) struct RouteBook(Arc<Mutex<Book>>);

impl RouteBook {
    fn lock(&self) -> MutexGuard<'_, Book> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a route installed for virtual router `router`.
    pub(crate) fn installed(&self, router: &str, route: Route) {
        self.lock().routes.push(Installed {
            router: router.to_owned(),
            route,
            active: true,
            pinned: false,
        });
    }

    /// Takes the routes through `interface` out of the routing table, a log line for each
    /// failure; returns those withdrawn (`destination via interface metric m`). With `pin`
    /// (an IPv6 monitor's destination) inside a withdrawn route, a host route to it through
    /// `interface` is installed in their place, returned second.
    pub(crate) fn withdraw(
        &self,
        interface: &str,
        pin: Option<IpAddr>,
        log: &SharedLog,
    ) -> (Vec<String>, Option<String>) {
        let mut book = self.lock();
        let mut done = Vec::new();
        let mut pinned = None;
        let mut pin_metric = None;
        for r in book
            .routes
            .iter_mut()
            .filter(|r| r.active && !r.pinned && r.route.interface == interface)
        {
            match ferrosec_netio::delete_route(&r.route) {
                Ok(()) => {
                    r.active = false;
                    done.push(r.route.to_string());
                    if let Some(p) = pin
                        && r.route.destination.contains(&p)
                        && pin_metric
                            .as_ref()
                            .is_none_or(|(m, _, _)| r.route.metric < *m)
                    {
                        pin_metric = Some((r.route.metric, r.router.clone(), r.route.table));
                    }
                }
                Err(e) => log.record(
                    Severity::Error,
                    &format!("virtual-router {}", r.router),
                    format!("cannot withdraw route {}: {e}", r.route),
                ),
            }
        }
        if let (Some(p), Some((metric, router, table))) = (pin, pin_metric) {
            let route = Route {
                destination: ipnet::IpNet::from(p),
                interface: interface.to_owned(),
                metric,
                source: None,
                next_hop: None,
                table,
            };
            match ferrosec_netio::replace_route(&route) {
                Ok(()) => {
                    pinned = Some(route.to_string());
                    book.routes.push(Installed {
                        router,
                        route,
                        active: true,
                        pinned: true,
                    });
                }
                Err(e) => log.record(
                    Severity::Error,
                    &format!("interface {interface}"),
                    format!("cannot install the probes' host route {route}: {e}"),
                ),
            }
        }
        (done, pinned)
    }

    /// Puts the withdrawn routes through `interface` back, unless the daemon is stopping;
    /// returns those restored.
    pub(crate) fn restore(&self, interface: &str, log: &SharedLog) -> Vec<String> {
        let mut book = self.lock();
        if book.closed {
            return Vec::new();
        }
        let mut done = Vec::new();
        for r in book
            .routes
            .iter_mut()
            .filter(|r| !r.active && !r.pinned && r.route.interface == interface)
        {
            match ferrosec_netio::replace_route(&r.route) {
                Ok(()) => {
                    r.active = true;
                    done.push(r.route.to_string());
                }
                Err(e) => log.record(
                    Severity::Error,
                    &format!("virtual-router {}", r.router),
                    format!("cannot restore route {}: {e}", r.route),
                ),
            }
        }
        book.routes.retain(|r| {
            if !(r.pinned && r.route.interface == interface) {
                return true;
            }
            if let Err(e) = ferrosec_netio::delete_route(&r.route) {
                log.record(
                    Severity::Warning,
                    &format!("interface {interface}"),
                    format!("cannot remove the probes' host route {}: {e}", r.route),
                );
            }
            false
        });
        done
    }

    /// Shutdown: no more restores; returns the routes in the routing table now, in the order
    /// they were installed, each with its virtual router, for removal.
    pub(crate) fn close(&self) -> Vec<(String, Route)> {
        let mut book = self.lock();
        book.closed = true;
        book.routes
            .drain(..)
            .filter(|r| r.active)
            .map(|r| (r.router, r.route))
            .collect()
    }

    /// A reload: takes the routes `gone` says go out of the book (withdrawn ones and a
    /// monitor's pinned host routes too) and returns them with whether they are in the
    /// routing table now, for removal.
    pub(crate) fn take(&self, gone: impl Fn(&str, &Route) -> bool) -> Vec<(String, Route, bool)> {
        let mut book = self.lock();
        let mut out = Vec::new();
        book.routes.retain(|r| {
            if gone(&r.router, &r.route) {
                out.push((r.router.clone(), r.route.clone(), r.active));
                false
            } else {
                true
            }
        });
        out
    }

    /// The routes in the book (not pinned ones), each with its virtual router.
    pub(crate) fn routes(&self) -> Vec<(String, Route)> {
        self.lock()
            .routes
            .iter()
            .filter(|r| !r.pinned)
            .map(|r| (r.router.clone(), r.route.clone()))
            .collect()
    }

    /// Whether [`RouteBook::close`] has run: the daemon is stopping.
    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Whether the routes through `interface` are in the routing table.
    pub(crate) fn state(&self, interface: &str) -> RoutesState {
        let book = self.lock();
        let mut mine = book
            .routes
            .iter()
            .filter(|r| !r.pinned && r.route.interface == interface)
            .peekable();
        if mine.peek().is_none() {
            RoutesState::None
        } else if mine.all(|r| r.active) {
            RoutesState::Active
        } else {
            RoutesState::Withdrawn
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(dest: &str, interface: &str, metric: u32) -> Route {
        Route {
            destination: dest.parse().unwrap(),
            interface: interface.to_owned(),
            metric,
            source: None,
            next_hop: None,
            table: ferrosec_netio::MAIN_TABLE,
        }
    }

    // Withdrawing and restoring talk to the kernel (interop 35 tests them); the bookkeeping
    // around them is tested here without IO.
    #[test]
    fn state_and_close_keep_the_install_order_and_stop_restores() {
        let book = RouteBook::default();
        assert_eq!(book.state("tunnel.1"), RoutesState::None);
        book.installed("default", route("10.2.0.0/24", "tunnel.1", 10));
        book.installed("default", route("10.2.0.0/24", "tunnel.2", 20));
        book.installed("vr2", route("fd00:2::/64", "tunnel.1", 10));
        assert_eq!(book.state("tunnel.1"), RoutesState::Active);
        assert_eq!(book.state("tunnel.3"), RoutesState::None);
        assert!(!book.is_closed());
        // A withdrawn route is not removed again at shutdown.
        book.lock().routes[0].active = false;
        assert_eq!(book.state("tunnel.1"), RoutesState::Withdrawn);
        let removed: Vec<String> = book
            .close()
            .iter()
            .map(|(vr, r)| format!("{vr} {r}"))
            .collect();
        assert_eq!(
            removed,
            [
                "default 10.2.0.0/24 via tunnel.2 metric 20",
                "vr2 fd00:2::/64 via tunnel.1 metric 10"
            ]
        );
        assert!(book.is_closed());
        // After shutdown nothing is restored (and the kernel is not asked).
        let log = SharedLog::new(crate::syslog::SystemLog::open(None).unwrap());
        assert_eq!(book.restore("tunnel.1", &log), Vec::<String>::new());
    }

    /// A reload takes the routes the new file does not have out of the book, withdrawn
    /// ones too, and says which are in the routing table; the others stay in order.
    #[test]
    fn a_reload_takes_the_routes_that_go() {
        let book = RouteBook::default();
        book.installed("default", route("10.2.0.0/24", "tunnel.1", 10));
        book.installed("default", route("10.3.0.0/24", "tunnel.2", 10));
        book.installed("default", route("10.4.0.0/24", "tunnel.2", 20));
        book.lock().routes[2].active = false;
        let gone: Vec<String> = book
            .take(|_, r| r.interface == "tunnel.2")
            .iter()
            .map(|(vr, r, active)| format!("{vr} {r} {active}"))
            .collect();
        assert_eq!(
            gone,
            [
                "default 10.3.0.0/24 via tunnel.2 metric 10 true",
                "default 10.4.0.0/24 via tunnel.2 metric 20 false"
            ]
        );
        let left: Vec<String> = book.routes().iter().map(|(_, r)| r.to_string()).collect();
        assert_eq!(left, ["10.2.0.0/24 via tunnel.1 metric 10"]);
        assert_eq!(book.state("tunnel.2"), RoutesState::None);
    }
}
