//! A poem [`Acceptor`] that wraps another one (TCP) in TLS.

use std::sync::Arc;

use poem::http::uri::Scheme;
use poem::listener::Acceptor;
use poem::web::{LocalAddr, RemoteAddr};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::rustls;

use super::handshake::HandshakeStream;

/// TLS over an inner acceptor; the handshake runs when the connection is first
/// read or written, on the connection's own task.
pub struct TlsAcceptor<A> {
    inner: A,
    tls: tokio_rustls::TlsAcceptor,
}

impl<A> TlsAcceptor<A> {
    /// Wraps `inner` with `config`.
    pub fn new(inner: A, config: Arc<rustls::ServerConfig>) -> Self {
        TlsAcceptor {
            inner,
            tls: tokio_rustls::TlsAcceptor::from(config),
        }
    }
}

impl<A> Acceptor for TlsAcceptor<A>
where
    A: Acceptor,
    A::Io: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    type Io = HandshakeStream<tokio_rustls::server::TlsStream<A::Io>>;

    fn local_addr(&self) -> Vec<LocalAddr> {
        self.inner.local_addr()
    }

    async fn accept(&mut self) -> std::io::Result<(Self::Io, LocalAddr, RemoteAddr, Scheme)> {
        let (io, local, remote, _) = self.inner.accept().await?;
        let handshake = self.tls.accept(io);
        Ok((
            HandshakeStream::new(handshake),
            local,
            remote,
            Scheme::HTTPS,
        ))
    }
}
