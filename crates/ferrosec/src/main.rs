//! `ferrosec`: the site-to-site IPsec gateway daemon and its operational CLI.
//!
//! `ferrosec run -c FILE` starts the daemon; every other command either works on a file
//! (`config check`) or talks to a running daemon over its control socket (`show`, `test`,
//! `clear`), in the words a firewall engineer already uses.

mod buildinfo;
mod cli;
mod control;
mod counters;
mod daemon;
mod dataplane;
mod demo;
mod fetch;
mod ike;
mod ikecfg;
mod impair;
mod keyexport;
mod manual;
mod metrics;
mod monitor;
mod parked;
mod pki;
mod policy;
mod process;
mod reload;
mod routes;
mod served;
mod status;
mod syslog;
mod tcpencap;
mod vrtables;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Args::parse();
    match cli::dispatch(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ferrosec: {e:#}");
            ExitCode::FAILURE
        }
    }
}
