//! Progress bars for long work (checkpoint sweeps, comparisons, long runs, `validate`,
//! large timeline writes): a label, a bar, the count and elapsed time on stderr, drawn only
//! when the caller asks for one *and* stderr is a terminal, so piped or logged output stays
//! silent and byte-identical.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Whether a bar asked for with `show` is drawn: only on a terminal's stderr.
pub fn visible(show: bool) -> bool {
    show && std::io::stderr().is_terminal()
}

/// A bar of `len` steps labelled `label` (`checkpoint intervals`, `validate`, ...); hidden
/// unless `show` and stderr is a terminal.
pub fn bar(len: u64, label: &str, show: bool) -> ProgressBar {
    let target = if visible(show) {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let pb = ProgressBar::with_draw_target(Some(len), target);
    if let Ok(style) =
        ProgressStyle::with_template("{msg} {bar:40} {human_pos}/{human_len} {elapsed}")
    {
        pb.set_style(style);
    }
    pb.set_message(label.to_string());
    pb
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bar_not_asked_for_is_hidden_and_keeps_its_label() {
        let pb = bar(10, "validate", false);
        assert!(pb.is_hidden());
        assert_eq!(pb.message(), "validate");
        pb.inc(3);
        assert_eq!(pb.position(), 3);
    }
}
