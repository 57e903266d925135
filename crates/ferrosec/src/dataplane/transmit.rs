//! The send stage of an outbound worker, on a thread of its own (issue 16: both cores carry
//! packets).
//!
//! Sending is the most expensive step of the outbound path: a `sendmmsg` of raw ESP, or a UDP
//! GSO send, runs the kernel's whole output path, and over a local link also the receiving
//! side's input path, before it returns. Done in the worker, it serialises with reading the TUN
//! device and encrypting, so one tunnel's traffic is carried by one core. Here the worker fills
//! a [`TxBatch`] (the encrypted packets back to back and their [`Run`]s) and hands it to the
//! tunnel interface's send thread; while the thread sends one batch, the worker reads and
//! encrypts the next. Batches keep their order, so a flow's packets leave in the order they
//! were read.
//!
//! Nothing is allocated per packet or per batch: [`IN_FLIGHT`] batches are allocated once and
//! go round between the worker and the thread. When all are in flight the worker waits for one
//! (the kernel's TUN queue then holds the next packets, as it does while the worker encrypts).
//! If the thread cannot be started, the worker sends each batch itself, as before.

use std::sync::mpsc as std_mpsc;

use super::*;

/// Batches per tunnel interface: one the worker fills, one the thread sends, one spare.
const IN_FLIGHT: usize = 3;

/// Stack of a send thread: it only walks runs and makes system calls.
const STACK: usize = 256 * 1024;

/// Encrypted packets back to back in `buf`, and the runs that say how each part is sent.
pub(super) struct TxBatch {
    pub(super) buf: Vec<u8>,
    pub(super) runs: Vec<Run>,
}

impl TxBatch {
    fn new(len: usize) -> Self {
        TxBatch {
            buf: vec![0u8; len],
            runs: Vec::with_capacity(TUN_BATCH),
        }
    }

    /// Sends every run and empties the batch.
    fn send(&mut self, senders: &Senders) {
        for r in self.runs.drain(..) {
            r.send(senders, &self.buf);
        }
    }
}

/// The worker's side of the send stage.
pub(super) struct Transmitter {
    /// To the send thread; `None` when it could not be started (the worker sends itself).
    to_thread: Option<std_mpsc::SyncSender<TxBatch>>,
    free: mpsc::Receiver<TxBatch>,
    /// Where a batch goes back when the worker sent it itself.
    free_tx: mpsc::Sender<TxBatch>,
    senders: Arc<Senders>,
}

impl Transmitter {
    /// Starts the send thread of tunnel interface `name`, with batches of `len` bytes. Must be
    /// called inside a tokio runtime (the thread enters it: TCP encapsulation may open a
    /// stream from there).
    pub(super) fn start(name: &str, senders: Arc<Senders>, len: usize) -> Self {
        let (free_tx, free) = mpsc::channel(IN_FLIGHT);
        for _ in 0..IN_FLIGHT {
            let _ = free_tx.try_send(TxBatch::new(len));
        }
        let (to_thread, from_worker) = std_mpsc::sync_channel::<TxBatch>(IN_FLIGHT);
        let runtime = tokio::runtime::Handle::current();
        let back = free_tx.clone();
        let thread_senders = Arc::clone(&senders);
        let started = std::thread::Builder::new()
            .name(format!("tx-{name}"))
            .stack_size(STACK)
            .spawn(move || {
                let _runtime = runtime.enter();
                while let Ok(mut batch) = from_worker.recv() {
                    batch.send(&thread_senders);
                    if back.try_send(batch).is_err() {
                        break; // the worker is gone
                    }
                }
            });
        let to_thread = match started {
            Ok(_) => Some(to_thread),
            Err(e) => {
                tracing::warn!(
                    "{name}: cannot start its send thread ({e}); its worker sends by itself"
                );
                None
            }
        };
        Transmitter {
            to_thread,
            free,
            free_tx,
            senders,
        }
    }

    /// An empty batch to fill; waits while all are in flight. `None` only if the send thread
    /// ended without giving its batches back (it does not: it ends when the worker does).
    pub(super) async fn take(&mut self) -> Option<TxBatch> {
        self.free.recv().await
    }

    /// Sends `batch`: hands it to the send thread, or sends it here without one. A batch
    /// without runs goes straight back.
    pub(super) fn send(&self, mut batch: TxBatch) {
        if !batch.runs.is_empty()
            && let Some(t) = &self.to_thread
        {
            // Never blocks: the channel holds every batch there is.
            match t.try_send(batch) {
                Ok(()) => return,
                Err(std_mpsc::TrySendError::Full(b) | std_mpsc::TrySendError::Disconnected(b)) => {
                    batch = b
                }
            }
        }
        batch.send(&self.senders);
        let _ = self.free_tx.try_send(batch);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrosec_esp::UdpEncap;

    /// The next free batch, which must come back within 5 s.
    async fn next(tx: &mut Transmitter) -> TxBatch {
        tokio::time::timeout(Duration::from_secs(5), tx.take())
            .await
            .expect("a batch comes back")
            .expect("the thread keeps its batches")
    }

    /// Senders with one UDP port on loopback (no NAT-T marker handling needed to send).
    fn senders(port: UdpPort) -> Arc<Senders> {
        let (triggers, _) = mpsc::channel(1);
        Arc::new(Senders {
            udp: Arc::new(vec![port]),
            raw: Arc::new(RawSenders {
                esp: Vec::new(),
                ah: Vec::new(),
            }),
            triggers,
            drops: Arc::new(GlobalDrops::default()),
            tcp: None,
        })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn batches_are_sent_in_order_by_the_thread_and_come_back() {
        let lo = IpAddr::from([127, 0, 0, 1]);
        let port = UdpPort::bind(SocketAddr::new(lo, 0), true, &Default::default()).unwrap();
        let from = port.bound();
        // Let the runtime's reactor see the new socket writable (it parks while sleeping), as
        // it has long before traffic flows in the daemon: tokio sends only on a ready socket.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let sink = std::net::UdpSocket::bind((lo, 0)).unwrap();
        sink.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let path = Path {
            local: lo,
            remote: lo,
            udp: Some(UdpEncap {
                local_port: from.port(),
                remote_port: sink.local_addr().unwrap().port(),
            }),
        };
        let counters = Arc::new(SaCounters::default());
        let mut tx = Transmitter::start("t0", senders(port), 4096);
        assert!(tx.to_thread.is_some(), "the send thread started");
        // More batches than are in flight: each must come back from the thread. Each holds one
        // run of two 100-byte packets numbered in their first byte.
        let batches = IN_FLIGHT * 4;
        for i in 0..batches {
            let mut b = next(&mut tx).await;
            assert!(b.runs.is_empty(), "batch {i} came back with runs");
            b.buf[0] = (2 * i) as u8;
            b.buf[100] = (2 * i + 1) as u8;
            b.runs.push(Run::for_test(
                path,
                Some(Arc::clone(&counters)),
                100,
                2,
                160,
            ));
            tx.send(b);
        }
        let mut got = Vec::new();
        let mut buf = [0u8; 200];
        for _ in 0..2 * batches {
            let n = sink.recv(&mut buf).expect("every packet arrives");
            assert_eq!(n, 100);
            got.push(usize::from(buf[0]));
        }
        assert_eq!(
            got,
            (0..2 * batches).collect::<Vec<_>>(),
            "in the order given"
        );
        // All batches come back, so the thread has counted every run.
        for _ in 0..IN_FLIGHT {
            next(&mut tx).await;
        }
        let c = counters.snapshot();
        assert_eq!(c.packets_out, 2 * batches as u64);
        assert_eq!(c.bytes_out, 160 * batches as u64);
        assert!(c.drops.is_empty(), "{:?}", c.drops);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn without_a_socket_for_the_path_a_run_counts_as_failed() {
        let lo = IpAddr::from([127, 0, 0, 1]);
        let port = UdpPort::bind(SocketAddr::new(lo, 0), true, &Default::default()).unwrap();
        let counters = Arc::new(SaCounters::default());
        let mut tx = Transmitter::start("t1", senders(port), 4096);
        let path = Path {
            local: IpAddr::from([127, 0, 0, 2]),
            remote: lo,
            udp: None,
        };
        let mut b = next(&mut tx).await;
        b.runs.push(Run::for_test(
            path,
            Some(Arc::clone(&counters)),
            100,
            3,
            240,
        ));
        tx.send(b);
        for _ in 0..IN_FLIGHT {
            next(&mut tx).await;
        }
        let c = counters.snapshot();
        assert_eq!(c.packets_out, 0);
        assert_eq!(c.drops.get("send-failed"), Some(&3));
    }
}
