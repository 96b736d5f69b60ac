//! The migration's progress on stderr: one line redrawn in place on a terminal, one
//! line per finished step otherwise (logs and CI).

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use ragbrain::services::migrate::Progress;

/// Redraws at most this often, so a fast copy does not spend its time printing.
const REDRAW: Duration = Duration::from_millis(100);
const WIDTH: usize = 30;

pub struct Bar {
    terminal: bool,
    drawn: Option<Instant>,
    started: Instant,
}

impl Bar {
    pub fn new() -> Self {
        Self {
            terminal: std::io::stderr().is_terminal(),
            drawn: None,
            started: Instant::now(),
        }
    }

    pub fn show(&mut self, p: &Progress<'_>) {
        let line = line(p);
        let mut err = std::io::stderr().lock();
        if p.finished {
            let secs = self.started.elapsed().as_secs_f64();
            let _ = match self.terminal {
                true => writeln!(err, "\r\x1b[2K{line} ({secs:.1} s)"),
                false => writeln!(err, "{line} ({secs:.1} s)"),
            };
            self.drawn = None;
            self.started = Instant::now();
        } else if self.terminal && self.drawn.is_none_or(|t| t.elapsed() >= REDRAW) {
            let _ = write!(err, "\r\x1b[2K{line}");
            let _ = err.flush();
            self.drawn = Some(Instant::now());
        }
    }

    /// Ends a line left unfinished, before an error is printed.
    pub fn clear(&self) {
        if self.terminal && self.drawn.is_some() {
            eprintln!();
        }
    }
}

fn line(p: &Progress<'_>) -> String {
    match p.total {
        Some(total) if total > 0 => {
            let done = p.copied.min(total);
            let filled = (done as usize * WIDTH) / total as usize;
            format!(
                "{:<40} [{}{}] {done}/{total}",
                p.step,
                "#".repeat(filled),
                "-".repeat(WIDTH - filled)
            )
        }
        _ => format!("{:<40} {}", p.step, p.copied),
    }
}
