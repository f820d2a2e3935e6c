//! Live progress on stderr: indicatif bars on a terminal (an overall bar and
//! one line per host in flight with its step), plain lines otherwise, so CI
//! logs stay readable and free of escape codes. Host names come from input
//! files: they are shown through [`super::inert`].

use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::converge::Event;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Bars,
    Plain,
}

impl Mode {
    /// Bars only when stderr is a terminal and the environment is not CI.
    pub fn detect() -> Mode {
        let ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false");
        if std::io::stderr().is_terminal()
            && !ci
            && std::env::var_os("TERM").is_some_and(|t| t != "dumb")
        {
            Mode::Bars
        } else {
            Mode::Plain
        }
    }
}

/// Consume events until the runner drops its sender. `verbosity` 1 (`-v`)
/// adds a line per host and step, with the time since the host started;
/// 2 (`-vv`) also every step sent and what the host printed.
pub async fn drive(mut rx: UnboundedReceiver<Event>, mode: Mode, verbosity: u8) {
    let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
    let mut overall: Option<ProgressBar> = None;
    let mut bars: HashMap<String, ProgressBar> = HashMap::new();
    let (mut done, mut total) = (0usize, 0usize);
    let mut started: HashMap<String, Instant> = HashMap::new();
    let say = |multi: &MultiProgress, line: String| {
        if mode == Mode::Bars {
            let _ = multi.println(line);
        } else {
            eprintln!("{line}");
        }
    };
    let host_style = ProgressStyle::with_template("  {spinner} {prefix:<20} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    while let Some(ev) = rx.recv().await {
        match ev {
            Event::RunStarted { total: t } => {
                total = t;
                if mode == Mode::Bars {
                    let style =
                        ProgressStyle::with_template("{bar:40} {pos}/{len} hosts  {elapsed}")
                            .unwrap_or_else(|_| ProgressStyle::default_bar());
                    let bar = multi.add(ProgressBar::new(t as u64).with_style(style));
                    overall = Some(bar);
                }
            }
            Event::HostStarted { name } => {
                started.insert(name.clone(), Instant::now());
                if mode == Mode::Bars {
                    let bar = multi.add(ProgressBar::new_spinner().with_style(host_style.clone()));
                    bar.set_prefix(super::inert::line(&name).into_owned());
                    bar.set_message("connect");
                    bar.enable_steady_tick(Duration::from_millis(120));
                    bars.insert(name, bar);
                }
            }
            Event::HostStep { name, step } => {
                if let Some(b) = bars.get(&name) {
                    b.set_message(step.as_str());
                }
                if verbosity >= 1 {
                    let t = started
                        .get(&name)
                        .map_or(0.0, |t| t.elapsed().as_secs_f64());
                    let name = super::inert::line(&name);
                    say(&multi, format!("  {name} {t:>7.3}s {}", step.as_str()));
                }
            }
            Event::HostTrace { name, text } => {
                if verbosity >= 2 {
                    let t = started
                        .get(&name)
                        .map_or(0.0, |t| t.elapsed().as_secs_f64());
                    let name = super::inert::line(&name);
                    let text = super::inert::text(&text);
                    let mut block = String::new();
                    for (i, l) in text.lines().enumerate() {
                        if i > 0 {
                            block.push('\n');
                        }
                        block.push_str(&format!("  {name} {t:>7.3}s | {l}"));
                    }
                    say(&multi, block);
                }
            }
            Event::HostFinished(rep) => {
                done += 1;
                if let Some(b) = bars.remove(&rep.name) {
                    b.finish_and_clear();
                    multi.remove(&b);
                }
                if let Some(o) = &overall {
                    o.inc(1);
                }
                let line = format!(
                    "[{done}/{total}] {} {}{} ({:.2}s)",
                    super::inert::line(&rep.name),
                    rep.status.as_str(),
                    rep.step
                        .map(|s| format!(" at {}", s.as_str()))
                        .unwrap_or_default(),
                    rep.duration_ms as f64 / 1000.0
                );
                say(&multi, line);
                started.remove(&rep.name);
            }
            Event::Stopping { reason } => {
                say(&multi, format!("rampart: {}", super::inert::text(&reason)))
            }
        }
    }
    if let Some(o) = overall {
        o.finish_and_clear();
    }
    let _ = multi.clear();
}
