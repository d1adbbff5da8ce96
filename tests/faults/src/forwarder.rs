//! A userspace forwarder between the client and the server: what the
//! kernel here cannot do without netem. Datagrams (QUIC) are delayed with
//! jitter, some reordered, some duplicated; a TCP byte stream (ws) is
//! delayed and sometimes stalled, since the kernel repairs loss and order
//! on TCP itself. Random loss is nftables' (`Link::set_loss`).

use std::cmp::Reverse;
use std::collections::hash_map::Entry;
use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::{sleep_until, Instant};

/// What the forwarder does to each packet (UDP) or chunk (TCP), each way.
#[derive(Debug, Clone, Copy)]
pub struct Faults {
    /// Mean one-way delay.
    pub delay: Duration,
    /// Each delay is `delay ± jitter`, uniform; in order unless reordered.
    pub jitter: Duration,
    /// UDP: percent of datagrams held back a further `delay`, so that later
    /// ones overtake them.
    pub reorder_percent: u32,
    /// UDP: percent of datagrams sent twice.
    pub duplicate_percent: u32,
    /// TCP: percent of chunks held a further `stall`, with everything behind
    /// them (a stall).
    pub stall_percent: u32,
    /// TCP: how long a stall lasts.
    pub stall: Duration,
}

impl Faults {
    /// The issue's link: 40 ms ± 10 ms, 5 % reordering, 1 % duplication
    /// (UDP); TCP: the same delay, 5 % of chunks stalled 200 ms.
    pub fn issue() -> Faults {
        Faults {
            delay: Duration::from_millis(40),
            jitter: Duration::from_millis(10),
            reorder_percent: 5,
            duplicate_percent: 1,
            stall_percent: 5,
            stall: Duration::from_millis(200),
        }
    }

    fn delay(&self, rng: &mut fastrand::Rng) -> Duration {
        let jitter = self.jitter.as_micros() as u64;
        let base = self.delay.as_micros() as u64;
        Duration::from_micros(base - jitter + rng.u64(0..=2 * jitter))
    }
}

/// Figures of one forwarder, for the test's report.
#[derive(Debug, Default)]
pub struct Counters {
    /// Datagrams or chunks forwarded.
    pub forwarded: std::sync::atomic::AtomicU64,
    /// Datagrams reordered.
    pub reordered: std::sync::atomic::AtomicU64,
    /// Datagrams duplicated.
    pub duplicated: std::sync::atomic::AtomicU64,
    /// TCP stalls.
    pub stalled: std::sync::atomic::AtomicU64,
}

/// A running forwarder: its tasks end when it is dropped.
pub struct Forwarder {
    /// Where the client connects.
    pub addr: SocketAddr,
    /// What it did.
    pub counters: Arc<Counters>,
    tasks: JoinSet<()>,
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.tasks.abort_all();
    }
}

/// A delay line: packets leave at their release time, ties in arrival order.
struct DelayLine {
    tx: mpsc::UnboundedSender<(Instant, u64, Bytes)>,
    seq: u64,
    /// The latest release so far: an in-order packet never leaves before it.
    last: Instant,
}

impl DelayLine {
    /// Starts the line; `send` writes a packet out.
    fn start<F, Fut>(tasks: &mut JoinSet<()>, mut send: F) -> DelayLine
    where
        F: FnMut(Bytes) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = bool> + Send,
    {
        let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, u64, Bytes)>();
        tasks.spawn(async move {
            let mut heap: BinaryHeap<Reverse<(Instant, u64, Bytes)>> = BinaryHeap::new();
            loop {
                let next = heap.peek().map(|Reverse((at, _, _))| *at);
                tokio::select! {
                    item = rx.recv() => match item {
                        Some(item) => heap.push(Reverse(item)),
                        None if heap.is_empty() => return,
                        None => {}
                    },
                    _ = sleep_until(next.unwrap_or_else(far_future)), if next.is_some() => {
                        let Some(Reverse((_, _, packet))) = heap.pop() else { continue };
                        if !send(packet).await {
                            return;
                        }
                    }
                }
            }
        });
        DelayLine {
            tx,
            seq: 0,
            last: Instant::now(),
        }
    }

    /// Queues `packet` to leave after `delay`; in order with the others
    /// unless `out_of_order`.
    fn push(&mut self, packet: Bytes, delay: Duration, out_of_order: bool) {
        let mut at = Instant::now() + delay;
        if !out_of_order {
            at = at.max(self.last);
            self.last = at;
        }
        self.seq += 1;
        let _ = self.tx.send((at, self.seq, packet));
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400)
}

/// Forwards UDP from `listen` to `upstream`, one upstream socket per client
/// address, with `faults` both ways.
pub async fn udp(listen: SocketAddr, upstream: SocketAddr, faults: Faults, seed: u64) -> Forwarder {
    let socket = Arc::new(UdpSocket::bind(listen).await.expect("forwarder bind"));
    let addr = socket.local_addr().expect("forwarder addr");
    let counters = Arc::new(Counters::default());
    let mut tasks = JoinSet::new();
    let front = socket.clone();
    let stats = counters.clone();
    tasks.spawn(async move {
        // The flows' tasks: aborted with this one.
        let mut inner = JoinSet::new();
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut flows: HashMap<SocketAddr, DelayLine> = HashMap::new();
        let mut buf = vec![0u8; 65_536];
        loop {
            let Ok((n, from)) = front.recv_from(&mut buf).await else {
                return;
            };
            let line = match flows.entry(from) {
                Entry::Occupied(flow) => flow.into_mut(),
                Entry::Vacant(slot) => {
                    let back = Arc::new(
                        UdpSocket::bind(SocketAddr::new(unspecified(upstream), 0))
                            .await
                            .expect("forwarder upstream bind"),
                    );
                    back.connect(upstream).await.expect("forwarder connect");
                    let out = back.clone();
                    let line = DelayLine::start(&mut inner, move |p| {
                        let out = out.clone();
                        async move { out.send(&p).await.is_ok() }
                    });
                    // Server to client: its own delay line and faults.
                    let client = front.clone();
                    let mut reply = DelayLine::start(&mut inner, move |p| {
                        let client = client.clone();
                        async move { client.send_to(&p, from).await.is_ok() }
                    });
                    let stats = stats.clone();
                    let mut rng = fastrand::Rng::with_seed(rng.u64(..));
                    inner.spawn(async move {
                        let mut buf = vec![0u8; 65_536];
                        while let Ok(n) = back.recv(&mut buf).await {
                            datagram(&mut reply, &buf[..n], &faults, &mut rng, &stats);
                        }
                    });
                    slot.insert(line)
                }
            };
            datagram(line, &buf[..n], &faults, &mut rng, &stats);
        }
    });
    Forwarder {
        addr,
        counters,
        tasks,
    }
}

fn datagram(
    line: &mut DelayLine,
    packet: &[u8],
    faults: &Faults,
    rng: &mut fastrand::Rng,
    stats: &Counters,
) {
    use std::sync::atomic::Ordering::Relaxed;
    let packet = Bytes::copy_from_slice(packet);
    let reorder = rng.u32(0..100) < faults.reorder_percent;
    let delay = faults.delay(rng)
        + if reorder {
            faults.delay
        } else {
            Duration::ZERO
        };
    if reorder {
        stats.reordered.fetch_add(1, Relaxed);
    }
    if rng.u32(0..100) < faults.duplicate_percent {
        stats.duplicated.fetch_add(1, Relaxed);
        line.push(packet.clone(), faults.delay(rng), false);
    }
    stats.forwarded.fetch_add(1, Relaxed);
    line.push(packet, delay, reorder);
}

/// Forwards TCP connections from `listen` to `upstream`, each chunk
/// delayed by `faults.delay ± jitter` in order, some stalled.
pub async fn tcp(listen: SocketAddr, upstream: SocketAddr, faults: Faults, seed: u64) -> Forwarder {
    let listener = TcpListener::bind(listen).await.expect("forwarder bind");
    let addr = listener.local_addr().expect("forwarder addr");
    let counters = Arc::new(Counters::default());
    let mut tasks = JoinSet::new();
    let stats = counters.clone();
    tasks.spawn(async move {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut pumps = JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((client, _)) = accepted else { return };
                    let Ok(server) = TcpStream::connect(upstream).await else { continue };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    pump(&mut pumps, cr, sw, faults, rng.u64(..), stats.clone());
                    pump(&mut pumps, sr, cw, faults, rng.u64(..), stats.clone());
                }
                Some(_) = pumps.join_next(), if !pumps.is_empty() => {}
            }
        }
    });
    Forwarder {
        addr,
        counters,
        tasks,
    }
}

/// One direction of a TCP connection: reads chunks, writes each after its
/// delay, in order; the end (or an error) is passed on as a shutdown once
/// everything before it went out.
fn pump(
    tasks: &mut JoinSet<()>,
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    faults: Faults,
    seed: u64,
    stats: Arc<Counters>,
) {
    use std::sync::atomic::Ordering::Relaxed;
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Option<Bytes>)>();
    tasks.spawn(async move {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut last = Instant::now();
        let mut buf = vec![0u8; 65_536];
        loop {
            let n = from.read(&mut buf).await.unwrap_or(0);
            let mut at = (Instant::now() + faults.delay(&mut rng)).max(last);
            if n > 0 && rng.u32(0..100) < faults.stall_percent {
                stats.stalled.fetch_add(1, Relaxed);
                at += faults.stall;
            }
            last = at;
            let chunk = (n > 0).then(|| Bytes::copy_from_slice(&buf[..n]));
            if tx.send((at, chunk)).is_err() || n == 0 {
                return;
            }
            stats.forwarded.fetch_add(1, Relaxed);
        }
    });
    tasks.spawn(async move {
        while let Some((at, chunk)) = rx.recv().await {
            sleep_until(at).await;
            match chunk {
                Some(chunk) => {
                    if to.write_all(&chunk).await.is_err() {
                        return;
                    }
                }
                None => break,
            }
        }
        let _ = to.shutdown().await;
    });
}

fn unspecified(addr: SocketAddr) -> std::net::IpAddr {
    match addr {
        SocketAddr::V4(_) => std::net::Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => std::net::Ipv6Addr::UNSPECIFIED.into(),
    }
}
