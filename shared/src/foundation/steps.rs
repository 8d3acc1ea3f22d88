//! How long work tells whoever runs it how far it has got: the CLI draws a
//! progress bar from it, everyone else passes `&()` and hears nothing.

/// The observer of one long piece of work, told its length, then each step.
pub trait Steps {
    /// The work is `total` steps of `what` (e.g. "tool schemas").
    fn begin(&self, _what: &str, _total: u64) {}
    /// One more step is done.
    fn step(&self) {}
    /// The work is over (done or given up).
    fn end(&self) {}
}

/// Nobody is watching.
impl Steps for () {}
