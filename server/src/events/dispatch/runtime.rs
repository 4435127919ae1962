//! The dispatchers' own runtime.

use crate::events::EventsError;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Starts the dispatchers' runtime on a thread of its own, which ends (and with it the
/// runtime) at `shutdown`. One thread: a current-thread runtime driven by that thread.
pub(super) fn dispatch_runtime(
    threads: usize,
    shutdown: CancellationToken,
) -> Result<tokio::runtime::Handle, EventsError> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("webhooks".into())
        .spawn(move || {
            let built = if threads <= 1 {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
            } else {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(threads)
                    .thread_name("webhooks")
                    .enable_all()
                    .build()
            };
            let rt = match built {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                    return;
                }
            };
            let _ = tx.send(Ok(rt.handle().clone()));
            rt.block_on(shutdown.cancelled());
            rt.shutdown_timeout(Duration::from_secs(1));
        })
        .map_err(|e| EventsError::Internal(format!("cannot start the webhook thread: {e}")))?;
    rx.recv()
        .map_err(|_| EventsError::Internal("the webhook thread ended at once".into()))?
        .map_err(|e| EventsError::Internal(format!("cannot start the webhook runtime: {e}")))
}
