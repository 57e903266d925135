//! What the crate's tests share.

/// Whether the tests run as root (network namespaces, TUN devices, raw and packet sockets).
pub(crate) fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// Runs `check` on a thread of its own moved into a fresh network namespace (the host's is
/// never touched; the namespace, its devices and routes vanish with the thread), inside a
/// tokio runtime, and waits for it. Skips, with a message, where there are no namespaces.
pub(crate) fn in_fresh_netns(check: impl FnOnce() + Send + 'static) {
    let worker = std::thread::spawn(|| {
        if let Err(e) = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET) {
            eprintln!("no network namespaces here ({e}); skipped");
            return;
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _guard = rt.enter();
        check();
    });
    worker.join().expect("the namespace thread");
}

/// Runs `fut` in a current-thread runtime if the tests run as root; otherwise says that what
/// `needs` root was skipped.
pub(crate) fn block_on_as_root(needs: &str, fut: impl std::future::Future<Output = ()>) {
    if !is_root() {
        eprintln!("{needs} need root; skipped");
        return;
    }
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(fut);
}

/// Runs `ip ARGS` (split on whitespace) and returns what it printed; panics if it fails.
pub(crate) fn ip(args: &str) -> String {
    let out = std::process::Command::new("ip")
        .args(args.split_whitespace())
        .output()
        .unwrap();
    assert!(out.status.success(), "ip {args}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}
