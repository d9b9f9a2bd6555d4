//! Progress on long waits (`submit --wait`, `wait`, `workflow --wait`, `retry --all` by
//! filter): an `indicatif` bar or spinner on stderr, drawn only when stderr is a terminal and
//! the output is not `--json`, so scripts, pipes and JSON consumers never see it. Why
//! indicatif: it is the well-kept standard for this, draws nothing when its target is not a
//! terminal, and limits its redraws (20 a second), so thousands of results a second cost
//! nothing.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar or spinner, or nothing when it must not be drawn. Cleared when dropped.
pub struct Progress(Option<ProgressBar>);

impl Progress {
    /// A bar of `total` steps.
    pub fn bar(total: u64, message: &str, json: bool) -> Self {
        Self::drawn(json, || {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({elapsed}, eta {eta})")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar
        })
        .message(message)
    }

    /// A spinner with a count, for work of unknown size.
    pub fn spinner(message: &str, json: bool) -> Self {
        Self::drawn(json, || {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg} {pos} ({elapsed})")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(100));
            bar
        })
        .message(message)
    }

    fn drawn(json: bool, make: impl FnOnce() -> ProgressBar) -> Self {
        Progress((!json && std::io::stderr().is_terminal()).then(make))
    }

    fn message(self, message: &str) -> Self {
        if let Some(bar) = &self.0 {
            bar.set_message(message.to_string());
        }
        self
    }

    /// `n` more steps done.
    pub fn inc(&self, n: u64) {
        if let Some(bar) = &self.0 {
            bar.inc(n);
        }
    }

    /// Runs `f` with the bar hidden, so lines written to the same terminal do not tear it.
    pub fn suspend<T>(&self, f: impl FnOnce() -> T) -> T {
        match &self.0 {
            Some(bar) => bar.suspend(f),
            None => f(),
        }
    }

    /// Whether anything is drawn.
    #[cfg(test)]
    pub fn is_drawn(&self) -> bool {
        self.0.is_some()
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_drawn_with_json_and_every_call_is_safe_without_a_bar() {
        let p = Progress::bar(10, "waiting", true);
        assert!(!p.is_drawn());
        p.inc(3);
        assert_eq!(p.suspend(|| 7), 7);
        let s = Progress::spinner("retrying", true);
        assert!(!s.is_drawn());
    }
}
