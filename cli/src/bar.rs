//! The progress bar of long CLI work (indicatif), drawn on stderr only when it
//! is a terminal, so that scripts and CI logs stay clean.

use std::cell::RefCell;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use shared::foundation::steps::Steps;

/// A bar labelled with the command's name, begun by the work it watches.
pub struct Bar {
    label: &'static str,
    bar: RefCell<Option<ProgressBar>>,
}

impl Bar {
    pub fn new(label: &'static str) -> Self {
        Self {
            label,
            bar: RefCell::new(None),
        }
    }

    /// A bar of `total` steps of `what`, begun now.
    pub fn begun(label: &'static str, what: &str, total: u64) -> Self {
        let bar = Self::new(label);
        bar.begin(what, total);
        bar
    }
}

impl Steps for Bar {
    fn begin(&self, what: &str, total: u64) {
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        let template = format!(
            "{} [{{elapsed_precise}}] {{wide_bar}} {{pos}}/{{len}} {what} ({{per_sec}}, {{eta}} left)",
            self.label
        );
        bar.set_style(
            ProgressStyle::with_template(&template)
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        if let Some(old) = self.bar.replace(Some(bar)) {
            old.finish_and_clear();
        }
    }

    fn step(&self) {
        if let Some(bar) = &*self.bar.borrow() {
            bar.inc(1);
        }
    }

    fn end(&self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.end();
    }
}
