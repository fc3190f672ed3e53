//! A TCP fault proxy between a service under test and one of its dependencies.
//!
//! It forwards bytes both ways until told otherwise:
//!
//! * [`FaultProxy::blackhole`] — connections stay open but nothing moves (bytes wait, as in a
//!   network partition); new connections are accepted and stall too;
//! * [`FaultProxy::refuse`] — every open connection is cut and new ones are closed at once;
//! * [`FaultProxy::pass`] — back to forwarding (held bytes are delivered).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

const PASS: u8 = 0;
const BLACKHOLE: u8 = 1;
const REFUSE: u8 = 2;

/// How often a held connection looks at the mode again.
const POLL: Duration = Duration::from_millis(10);

/// A proxy on a free loopback port in front of `upstream`.
pub struct FaultProxy {
    addr: SocketAddr,
    mode: Arc<AtomicU8>,
    accept: JoinHandle<()>,
}

impl FaultProxy {
    /// Starts forwarding from a free loopback port to `upstream`.
    ///
    /// # Errors
    /// When no port can be bound.
    pub async fn start(upstream: SocketAddr) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let mode = Arc::new(AtomicU8::new(PASS));
        let accept_mode = mode.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if accept_mode.load(Ordering::SeqCst) == REFUSE {
                    drop(client);
                    continue;
                }
                tokio::spawn(relay(client, upstream, accept_mode.clone()));
            }
        });
        Ok(Self { addr, mode, accept })
    }

    /// The proxy's address (give it to the service instead of the dependency's).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Forward bytes (the default).
    pub fn pass(&self) {
        self.mode.store(PASS, Ordering::SeqCst);
    }

    /// Hold every byte: connections stay open, nothing arrives.
    pub fn blackhole(&self) {
        self.mode.store(BLACKHOLE, Ordering::SeqCst);
    }

    /// Cut every connection and close new ones at once.
    pub fn refuse(&self) {
        self.mode.store(REFUSE, Ordering::SeqCst);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.refuse();
        self.accept.abort();
    }
}

async fn relay(client: TcpStream, upstream: SocketAddr, mode: Arc<AtomicU8>) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let up = tokio::spawn(pump(cr, sw, mode.clone()));
    let down = tokio::spawn(pump(sr, cw, mode));
    let _ = tokio::join!(up, down);
}

/// Copies `from` → `to` while the mode allows; stops reading while held, ends when refused.
async fn pump(mut from: tokio::net::tcp::OwnedReadHalf, mut to: tokio::net::tcp::OwnedWriteHalf, mode: Arc<AtomicU8>) {
    let mut buf = vec![0_u8; 16 * 1024];
    loop {
        match mode.load(Ordering::SeqCst) {
            REFUSE => return,
            BLACKHOLE => {
                tokio::time::sleep(POLL).await;
                continue;
            }
            _ => {}
        }
        // Wake up regularly to notice a change of mode while idle.
        let n = match tokio::time::timeout(POLL * 5, from.read(&mut buf)).await {
            Err(_) => continue,
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(n)) => n,
        };
        // Bytes read before a blackhole began wait for it to end, in order.
        while mode.load(Ordering::SeqCst) == BLACKHOLE {
            tokio::time::sleep(POLL).await;
        }
        if mode.load(Ordering::SeqCst) == REFUSE || to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
