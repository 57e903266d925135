//! The virtual router's routes that the daemon installed on the host, shared by the daemon
//! (installs them at start, removes them at shutdown, shows them) and the tunnel monitors (a
//! `fail-over` monitor withdraws the routes through its tunnel's interface and restores them).
//!
//! Once [`RouteBook::close`] has run (shutdown), nothing is restored any more: no route is
//! left behind after SIGTERM.

use std::sync::{Arc, Mutex, MutexGuard};

use ferrosec_netio::Route;

use crate::syslog::{Severity, SharedLog};

#[derive(Debug)]
struct Installed {
    router: String,
    route: Route,
    /// In the routing table now (false: withdrawn by a monitor).
    active: bool,
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
        });
    }

    /// Takes the routes through `interface` out of the routing table, a log line for each
    /// failure; returns those withdrawn (`destination via interface metric m`).
    pub(crate) fn withdraw(&self, interface: &str, log: &SharedLog) -> Vec<String> {
        let mut book = self.lock();
        let mut done = Vec::new();
        for r in book
            .routes
            .iter_mut()
            .filter(|r| r.active && r.route.interface == interface)
        {
            match ferrosec_netio::delete_route(&r.route) {
                Ok(()) => {
                    r.active = false;
                    done.push(r.route.to_string());
                }
                Err(e) => log.record(
                    Severity::Error,
                    &format!("virtual-router {}", r.router),
                    format!("cannot withdraw route {}: {e}", r.route),
                ),
            }
        }
        done
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
            .filter(|r| !r.active && r.route.interface == interface)
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

    /// Whether the routes through `interface` are in the routing table.
    pub(crate) fn state(&self, interface: &str) -> RoutesState {
        let book = self.lock();
        let mut mine = book
            .routes
            .iter()
            .filter(|r| r.route.interface == interface)
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
