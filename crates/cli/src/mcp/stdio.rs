//! MCP over stdin and stdout. stdout carries MCP only (logs go to
//! stderr). When stdin ends (the client exited or vanished), `stop` is
//! cancelled at once, so the calls in flight cancel their jobs then,
//! rather than after rmcp's 5 s wait for handlers to finish.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use anyhow::Context as _;
use rmcp::ServiceExt;
use tokio::io::{AsyncRead, ReadBuf};
use tokio_util::sync::CancellationToken;

use super::call::Fleet;
use super::handler::Session;

/// Serves one MCP session on stdio until the client closes it or `stop`.
pub(crate) async fn serve(fleet: Arc<Fleet>, stop: CancellationToken) -> anyhow::Result<()> {
    let stdin = EofSignal {
        inner: tokio::io::stdin(),
        eof: stop.clone(),
    };
    let running = Session::new(fleet)
        .serve((stdin, tokio::io::stdout()))
        .await
        .context("the MCP client did not initialize the session")?;
    let session = running.cancellation_token();
    tokio::spawn(async move {
        stop.cancelled().await;
        session.cancel();
    });
    let quit = running.waiting().await?;
    tracing::info!(?quit, "the MCP session ended");
    Ok(())
}

/// A reader that cancels `eof` when its reader ends.
struct EofSignal<R> {
    inner: R,
    eof: CancellationToken,
}

impl<R: AsyncRead + Unpin> AsyncRead for EofSignal<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(())))
            && buf.filled().len() == before
            && buf.remaining() > 0
        {
            self.eof.cancel();
        }
        polled
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn the_end_of_input_is_signalled() {
        let eof = CancellationToken::new();
        let mut reader = EofSignal {
            inner: &b"line\n"[..],
            eof: eof.clone(),
        };
        let mut line = [0u8; 5];
        reader.read_exact(&mut line).await.expect("reads");
        assert!(!eof.is_cancelled());
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest).await.expect("reads");
        assert!(eof.is_cancelled());
    }
}
