//! A run's scope inside a long-lived engine: the actor its events are recorded as, and a
//! cancellation of its own (the daemon cancels one run; `codencer` cancels everything).

use std::sync::Arc;

use tokio::sync::watch;

use super::Engine;
use crate::context::Context;

/// The context one run's actors share: the engine's, with the run's actor and cancellation.
#[derive(Debug, Clone)]
pub struct RunScope {
    pub(crate) ctx: Arc<Context>,
    cancel: Option<watch::Sender<bool>>,
}

impl RunScope {
    /// The engine's own scope: its actor, cancelled only with the whole engine.
    pub(crate) fn engine(engine: &Engine) -> RunScope {
        RunScope {
            ctx: engine.ctx.clone(),
            cancel: None,
        }
    }

    /// Cancels this run only: its attempt is killed and recorded, the run ends `cancelled`.
    /// A no-op for the engine's own scope (use [`Engine::cancel`]).
    pub fn cancel(&self) {
        if let Some(cancel) = &self.cancel {
            cancel.send_replace(true);
        }
    }

    /// Whether [`RunScope::cancel`] (or the engine's cancel) was called.
    pub fn is_cancelled(&self) -> bool {
        *self.ctx.cancel.borrow()
    }

    /// The actor events of this run are recorded as.
    pub fn actor(&self) -> &str {
        self.ctx.recorder.actor()
    }
}

impl Engine {
    /// A scope for one run whose events are recorded as `actor`. Cancelling the engine
    /// cancels it too. Needs a tokio runtime.
    pub fn scope(&self, actor: &str) -> RunScope {
        let (cancel, cancel_rx) = watch::channel(*self.ctx.cancel.borrow());
        let mut engine_cancel = self.ctx.cancel.clone();
        let forward = cancel.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    changed = engine_cancel.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        if *engine_cancel.borrow() {
                            forward.send_replace(true);
                            return;
                        }
                    }
                    // Every receiver is gone: the run is over.
                    () = forward.closed() => return,
                }
            }
        });
        let ctx = &self.ctx;
        RunScope {
            ctx: Arc::new(Context {
                recorder: ctx.recorder.as_actor(actor),
                state_dir: ctx.state_dir.clone(),
                cancel: cancel_rx,
                stop: ctx.stop.clone(),
                policy: ctx.policy.clone(),
                worker: ctx.worker.clone(),
            }),
            cancel: Some(cancel),
        }
    }
}
