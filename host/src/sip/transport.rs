//! UDP, TCP and TLS listeners (IPv4 and IPv6) and sending. Every complete message that
//! arrives meets the [`Shield`] first, is parsed by [`super::wire`] and handed up as
//! an [`Inbound`] to the [`Handler`] the layer above gave [`Transports::start`]; what
//! does not parse is answered with 400 when it can be and its source may be answered,
//! and dropped otherwise.
//!
//! The handler runs on the task that read the message, saving the hand-off per message
//! to a dispatcher task that a queue between them cost. While it runs, that socket or
//! connection is not read (the kernel's receive buffer holds what arrives), so the
//! layer above keeps anything slow off this path.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use switchyard_model::Transport;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::shield::Shield;
use super::trace::Trace;
use super::wire;
use crate::runtime::metrics::{Direction, MessageLabels, Metrics};

/// Where a message came from or goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Peer {
    /// Remote address.
    pub addr: SocketAddr,
    /// Transport.
    pub transport: Transport,
}

/// A parsed message and where it came from.
#[derive(Debug)]
pub struct Inbound {
    /// The message.
    pub msg: wire::Message,
    /// Its sender.
    pub peer: Peer,
}

/// What the layer above does with each message that parsed, on the task that read it.
pub trait Handler: Send + Sync {
    /// Handle one message. Reading from its socket or connection waits until this ends.
    fn handle(&self, inbound: Inbound) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

/// What in-memory transports sent, and to whom.
pub type Sent = mpsc::UnboundedReceiver<(Vec<u8>, Peer)>;

/// SIP over TLS: where to listen, what to present, whom to trust.
pub struct TlsListen {
    /// Listen address (5061 by convention).
    pub listen: SocketAddr,
    /// Our certificate.
    pub server: Arc<rustls::ServerConfig>,
    /// The CAs vendors' certificates must chain to.
    pub client: Arc<rustls::ClientConfig>,
}

/// The listening sockets' reading tasks: waiting to start, then running.
#[derive(Default)]
struct Listeners {
    tcp: Vec<TcpListener>,
    tls: Option<TcpListener>,
    tasks: Vec<JoinHandle<()>>,
}

struct TlsSide {
    local: SocketAddr,
    acceptor: TlsAcceptor,
    connector: TlsConnector,
}

/// Longest a TLS handshake may take before the connection is dropped.
const TLS_HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The bound sockets.
pub struct Transports {
    udp: Vec<Arc<UdpSocket>>,
    /// The UDP sockets' addresses, read once at bind (they never change): asked for
    /// every message we send or trace.
    local: Vec<SocketAddr>,
    /// Set instead of sockets by [`Transports::in_memory`]: every send lands here.
    memory: Option<mpsc::UnboundedSender<(Vec<u8>, Peer)>>,
    /// Open TCP and TLS connections by peer (accepted or dialled).
    tcp: Mutex<HashMap<Peer, mpsc::Sender<Vec<u8>>>>,
    /// The TLS listener's address and the TLS settings both ways, when configured.
    tls: Option<TlsSide>,
    /// Listeners bound but not yet read from, until [`Transports::start`].
    listeners: Mutex<Listeners>,
    /// Where parsed messages go, from [`Transports::start`] on.
    handler: OnceLock<Box<dyn Handler>>,
    /// Set by [`Transports::stop`]: messages still arriving are dropped.
    stopped: AtomicBool,
    /// The address put in our Via and Contact headers.
    pub advertised: SocketAddr,
    /// Bans, flood control and address lists, before parsing.
    pub shield: Arc<Shield>,
    /// Unknown sources get no answer at all, not even a 400.
    silent: bool,
    /// Messages read off the wire (after the shield), and those that did not parse.
    read: AtomicU64,
    malformed: AtomicU64,
    /// Counts every message sent and received, by method.
    metrics: Arc<Metrics>,
    /// Keeps every message sent and received for operators.
    pub trace: Arc<Trace>,
}

impl Transports {
    /// Bind UDP and TCP on every address, and TLS when configured. The first address
    /// is advertised. Nothing is read until [`start`](Self::start).
    pub async fn bind(
        listen: &[SocketAddr],
        tls: Option<TlsListen>,
        shield: Arc<Shield>,
        silent: bool,
        metrics: Arc<Metrics>,
        trace: Arc<Trace>,
    ) -> anyhow::Result<Arc<Transports>> {
        anyhow::ensure!(!listen.is_empty(), "no SIP listen address");
        let mut udp = Vec::new();
        let mut tcp = Vec::new();
        for addr in listen {
            let (socket, listener) = bind_pair(*addr).await?;
            udp.push(Arc::new(socket));
            tcp.push(listener);
        }
        let (tls_side, tls_listener) = match tls {
            Some(t) => {
                let listener = TcpListener::bind(t.listen)
                    .await
                    .map_err(|e| anyhow::anyhow!("binding SIP TLS {}: {e}", t.listen))?;
                let side = TlsSide {
                    local: listener.local_addr()?,
                    acceptor: TlsAcceptor::from(t.server),
                    connector: TlsConnector::from(t.client),
                };
                (Some(side), Some(listener))
            }
            None => (None, None),
        };
        let local = udp
            .iter()
            .map(|s| s.local_addr())
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(Arc::new(Transports {
            advertised: local[0],
            local,
            udp,
            memory: None,
            tcp: Mutex::default(),
            tls: tls_side,
            listeners: Mutex::new(Listeners {
                tcp,
                tls: tls_listener,
                tasks: Vec::new(),
            }),
            handler: OnceLock::new(),
            stopped: AtomicBool::new(false),
            shield,
            silent,
            read: Default::default(),
            malformed: Default::default(),
            metrics,
            trace,
        }))
    }

    /// Start reading: every message that parses goes to `handler`. Once only; later
    /// calls change nothing.
    pub fn start(self: &Arc<Self>, handler: Box<dyn Handler>) {
        if self.handler.set(handler).is_err() {
            return;
        }
        let mut listeners = self.listeners_lock();
        let mut tasks = Vec::new();
        for socket in &self.udp {
            tasks.push(tokio::spawn(read_udp(self.clone(), socket.clone())));
        }
        for listener in std::mem::take(&mut listeners.tcp) {
            tasks.push(tokio::spawn(accept_tcp(self.clone(), listener)));
        }
        if let Some(listener) = listeners.tls.take() {
            tasks.push(tokio::spawn(accept_tls(self.clone(), listener)));
        }
        listeners.tasks = tasks;
    }

    /// Stop reading: the listeners close, and what open connections still bring is
    /// dropped.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
        for task in self.listeners_lock().tasks.drain(..) {
            task.abort();
        }
    }

    fn listeners_lock(&self) -> std::sync::MutexGuard<'_, Listeners> {
        self.listeners.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Transports without sockets, advertising `advertised`: what is sent arrives on
    /// the returned receiver. For the transaction and call layers' unit tests.
    pub fn in_memory(advertised: SocketAddr) -> (Arc<Transports>, Sent) {
        let (sent, sent_rx) = mpsc::unbounded_channel();
        let transports = Arc::new(Transports {
            udp: Vec::new(),
            local: Vec::new(),
            memory: Some(sent),
            tcp: Mutex::default(),
            tls: None,
            listeners: Mutex::default(),
            handler: OnceLock::new(),
            stopped: AtomicBool::new(false),
            advertised,
            shield: Arc::new(Shield::new(super::shield::ShieldConfig {
                flood_limit: 0,
                ..Default::default()
            })),
            silent: false,
            read: Default::default(),
            malformed: Default::default(),
            metrics: Default::default(),
            trace: Arc::new(Trace::new(Default::default()).expect("no HEP socket to bind")),
        });
        (transports, sent_rx)
    }

    /// The address to advertise to `peer`: our first of its address family.
    pub fn advertised_for(&self, peer: SocketAddr) -> SocketAddr {
        self.local
            .iter()
            .copied()
            .find(|a| a.is_ipv4() == peer.is_ipv4())
            .unwrap_or(self.advertised)
    }

    /// The address to put in Via and Contact towards `peer`: the TLS listener's for a
    /// TLS peer, otherwise as [`advertised_for`](Self::advertised_for).
    pub fn advertised_to(&self, peer: Peer) -> SocketAddr {
        match (&self.tls, peer.transport) {
            (Some(tls), Transport::Tls) => tls.local,
            _ => self.advertised_for(peer.addr),
        }
    }

    /// The TLS listener's address, when SIP over TLS is on.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls.as_ref().map(|t| t.local)
    }

    /// Every address we listen on.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.local.clone()
    }

    /// Send a message. UDP goes out of the socket of the destination's address family;
    /// TCP reuses an open connection to the peer or dials one.
    pub async fn send(self: &Arc<Self>, bytes: Vec<u8>, to: Peer) {
        self.count(&bytes, Direction::Out);
        let local = self.advertised_to(to);
        self.trace
            .record(true, to.transport, local, to.addr, &bytes, None);
        if let Some(memory) = &self.memory {
            let _ = memory.send((bytes, to));
            return;
        }
        match to.transport {
            Transport::Udp => {
                let family = self
                    .local
                    .iter()
                    .position(|a| a.is_ipv4() == to.addr.is_ipv4());
                let socket = &self.udp[family.unwrap_or(0)];
                if let Err(e) = socket.send_to(&bytes, to.addr).await {
                    tracing::debug!(to = %to.addr, error = %e, "UDP send failed");
                }
            }
            Transport::Tcp | Transport::Tls => {
                let existing = self.tcp_lock().get(&to).cloned();
                let conn = match existing {
                    Some(c) if !c.is_closed() => c,
                    _ => match self.dial(to).await {
                        Ok(conn) => conn,
                        Err(e) => {
                            tracing::debug!(to = %to.addr, transport = ?to.transport, error = %e, "connect failed");
                            return;
                        }
                    },
                };
                let _ = conn.send(bytes).await;
            }
        }
    }

    /// Open a connection to `to` (TCP, or TLS checked against the trusted CAs: a
    /// vendor's certificate must name its IP address).
    async fn dial(self: &Arc<Self>, to: Peer) -> anyhow::Result<mpsc::Sender<Vec<u8>>> {
        let stream = TcpStream::connect(to.addr).await?;
        if to.transport != Transport::Tls {
            return Ok(self.adopt_stream(stream, to));
        }
        let tls = self
            .tls
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("SIP over TLS is not configured"))?;
        let name = rustls::pki_types::ServerName::IpAddress(to.addr.ip().into());
        let stream =
            tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, tls.connector.connect(name, stream))
                .await
                .map_err(|_| anyhow::anyhow!("TLS handshake timed out"))??;
        Ok(self.adopt_stream(stream, to))
    }

    /// Open TCP and TLS connections.
    pub fn tcp_connections(&self) -> usize {
        self.tcp_lock().len()
    }

    fn tcp_lock(&self) -> std::sync::MutexGuard<'_, HashMap<Peer, mpsc::Sender<Vec<u8>>>> {
        self.tcp.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Register a connection (TCP, or TLS over it) for sending and start reading from it.
    fn adopt_stream<S>(self: &Arc<Self>, stream: S, peer: Peer) -> mpsc::Sender<Vec<u8>>
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (mut reader, mut writer) = tokio::io::split(stream);
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(256);
        self.tcp_lock().insert(peer, tx.clone());
        tokio::spawn(async move {
            while let Some(bytes) = rx.recv().await {
                if writer.write_all(&bytes).await.is_err() {
                    break;
                }
            }
        });
        let me = self.clone();
        tokio::spawn(async move {
            let mut buf = Vec::with_capacity(8192);
            let mut chunk = vec![0u8; 8192];
            loop {
                match reader.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
                // Keep-alive CRLFs between messages.
                while buf.starts_with(b"\r\n") {
                    buf.drain(..2);
                }
                loop {
                    match wire::frame_len(&buf) {
                        Ok(Some(len)) => {
                            let frame: Vec<u8> = buf.drain(..len).collect();
                            me.deliver(&frame, peer).await;
                            while buf.starts_with(b"\r\n") {
                                buf.drain(..2);
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            // The stream cannot be re-synchronised: close it.
                            tracing::info!(peer = %peer.addr, error = %e, "closing connection");
                            me.tcp_lock().remove(&peer);
                            return;
                        }
                    }
                }
            }
            me.tcp_lock().remove(&peer);
        });
        tx
    }

    /// (messages read past the shield, of which malformed).
    pub fn read_counts(&self) -> (u64, u64) {
        (
            self.read.load(Ordering::Relaxed),
            self.malformed.load(Ordering::Relaxed),
        )
    }

    /// Whether a source may be answered at all.
    pub fn answers(&self, ip: std::net::IpAddr) -> bool {
        !self.silent || self.shield.is_known(ip)
    }

    fn count(&self, raw: &[u8], direction: Direction) {
        let (method, status) = wire::glance(raw);
        self.metrics.sip_message(&MessageLabels {
            direction,
            method,
            status,
        });
    }

    async fn deliver(self: &Arc<Self>, raw: &[u8], peer: Peer) {
        let now_ms = crate::now_ms();
        let ip = peer.addr.ip();
        let local = self.advertised_to(peer);
        if !self.shield.admit(ip, now_ms) {
            self.trace
                .record(false, peer.transport, local, peer.addr, raw, Some("shield"));
            return;
        }
        self.read.fetch_add(1, Ordering::Relaxed);
        self.count(raw, Direction::In);
        let parsed = wire::parse(raw);
        let scanner = parsed.as_ref().is_ok_and(|msg| {
            msg.status().is_none() && self.shield.is_scanner(ip, msg.header("User-Agent"), now_ms)
        });
        let dropped = scanner.then_some("scanner");
        self.trace
            .record(false, peer.transport, local, peer.addr, raw, dropped);
        match parsed {
            Ok(_) if scanner => {}
            Ok(msg) => match self.handler.get() {
                Some(handler) if !self.stopped.load(Ordering::Relaxed) => {
                    handler.handle(Inbound { msg, peer }).await
                }
                _ => tracing::debug!("SIP core stopped; message dropped"),
            },
            Err(e) => {
                self.malformed.fetch_add(1, Ordering::Relaxed);
                tracing::info!(source = %peer.addr, error = %e, "malformed SIP message");
                if !self.answers(ip) {
                    return;
                }
                if let Some(reply) = wire::bad_request_reply(raw, &e.0) {
                    self.send(reply, peer).await;
                }
            }
        }
    }
}

/// UDP and TCP on one port. With port 0 the port UDP gets may be taken for TCP (by
/// some other connection's ephemeral port): try again with another.
async fn bind_pair(addr: SocketAddr) -> anyhow::Result<(UdpSocket, TcpListener)> {
    let tries = if addr.port() == 0 { 20 } else { 1 };
    let mut last_error = None;
    for _ in 0..tries {
        let socket = UdpSocket::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("binding SIP UDP {addr}: {e}"))?;
        let bound = socket.local_addr()?;
        grow_receive_buffer(&socket, bound);
        match TcpListener::bind(bound).await {
            Ok(listener) => return Ok((socket, listener)),
            Err(e) => last_error = Some(anyhow::anyhow!("binding SIP TCP {bound}: {e}")),
        }
    }
    Err(last_error.unwrap_or_else(|| anyhow::anyhow!("binding SIP {addr}")))
}

/// Receive buffer asked for on each SIP UDP socket. The default (about 200 KB) filled
/// in bursts at 1,000 calls per second on a busy 2-core box, and the kernel dropped
/// what did not fit (seen as the socket's drops in /proc/net/udp, and as vendors'
/// answers lost). The kernel caps it at `net.core.rmem_max`.
const UDP_RECEIVE_BUFFER: usize = 8 << 20;

fn grow_receive_buffer(socket: &UdpSocket, addr: SocketAddr) {
    let sock = socket2::SockRef::from(socket);
    if let Err(e) = sock.set_recv_buffer_size(UDP_RECEIVE_BUFFER) {
        tracing::warn!(%addr, error = %e, "could not grow the SIP UDP receive buffer");
    }
    let got = sock.recv_buffer_size().unwrap_or(0);
    if got < UDP_RECEIVE_BUFFER {
        tracing::info!(%addr, bytes = got, wanted = UDP_RECEIVE_BUFFER,
            "SIP UDP receive buffer capped by net.core.rmem_max");
    }
}

async fn read_udp(transports: Arc<Transports>, socket: Arc<UdpSocket>) {
    let mut buf = vec![0u8; wire::MAX_MESSAGE_BYTES + 1];
    loop {
        match socket.recv_from(&mut buf).await {
            Ok((n, from)) => {
                let raw = &buf[..n];
                // Keep-alives (CRLF, empty datagrams) carry nothing.
                if raw.iter().all(|b| b.is_ascii_whitespace()) {
                    continue;
                }
                transports
                    .deliver(
                        raw,
                        Peer {
                            addr: from,
                            transport: Transport::Udp,
                        },
                    )
                    .await;
            }
            // ICMP errors surface here on some systems; keep reading.
            Err(e) => tracing::debug!(error = %e, "UDP receive error"),
        }
    }
}

async fn accept_tcp(transports: Arc<Transports>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, addr)) => {
                let peer = Peer {
                    addr,
                    transport: Transport::Tcp,
                };
                transports.adopt_stream(stream, peer);
            }
            Err(e) => {
                tracing::warn!(error = %e, "TCP accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

async fn accept_tls(transports: Arc<Transports>, listener: TcpListener) {
    let Some(acceptor) = transports.tls.as_ref().map(|t| t.acceptor.clone()) else {
        return;
    };
    loop {
        let (stream, addr) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "TLS accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        // A banned source gets no handshake to spend our CPU on.
        if !transports.shield.admit(addr.ip(), crate::now_ms()) {
            continue;
        }
        let (transports, acceptor) = (transports.clone(), acceptor.clone());
        tokio::spawn(async move {
            match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => {
                    let peer = Peer {
                        addr,
                        transport: Transport::Tls,
                    };
                    transports.adopt_stream(stream, peer);
                }
                Ok(Err(e)) => tracing::info!(source = %addr, error = %e, "TLS handshake failed"),
                Err(_) => tracing::info!(source = %addr, "TLS handshake timed out"),
            }
        });
    }
}
