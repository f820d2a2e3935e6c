//! Dispatch of the commands: load inputs, call the layer that does the work,
//! return the exit code (docs/design.md, "Exit codes"). For `apply`/`audit` this is where the
//! layers meet: inputs are loaded and checked (bad input ends here, before
//! any host is contacted), the engine runs on a tokio runtime with the SSH
//! transport, and the report layer shows its events and results.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cli::{Cli, Command, InventoryArgs, LabCommand, ReportCommand, RunArgs};
use crate::converge::{runner, Event, Job, RunConfig, Serial};
use crate::error::{Error, Result};
use crate::inventory::{Host, Inventory, LoadOptions, Shard, SshConfigChoice};
use crate::playbook::Playbook;
use crate::remote::{ConnectOptions, Password, Reach, SshConnector};
use crate::report::{self, RunSummary};

pub fn run(cli: Cli) -> Result<u8> {
    match cli.command {
        Command::Apply(args) => run_fleet_command(args, false),
        Command::Audit(args) => run_fleet_command(args, true),
        Command::Render(args) => crate::playbook::cli_render(&args),
        Command::Inventory(args) => inventory_command(&args),
        Command::Report(args) => match &args.command {
            ReportCommand::Merge(m) => report::merge::cli(m),
        },
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cmd, "rampart", &mut script);
            report::print(&script)?;
            Ok(crate::exit::OK)
        }
        Command::Man => {
            let cmd = <Cli as clap::CommandFactory>::command();
            let mut page = Vec::new();
            clap_mangen::Man::new(cmd)
                .render(&mut page)
                .map_err(|e| Error::io("rendering the man page", e))?;
            report::print(&page)?;
            Ok(crate::exit::OK)
        }
        Command::Lab(args) => lab_command(args.command),
    }
}

/// `rampart lab ...`: the lab works with plain arguments; what it did is
/// printed here.
fn lab_command(cmd: LabCommand) -> Result<u8> {
    use crate::lab::{self, Distro, Kind};
    match cmd {
        LabCommand::Up {
            n,
            dir,
            distros,
            cache,
        } => {
            let t0 = Instant::now();
            let kinds = if distros.is_empty() {
                Vec::new()
            } else {
                Kind::parse_list(&distros)?
            };
            let cache = lab::rootfs::cache_dir(cache.as_deref())?;
            let state = lab::up(n as usize, &dir, &kinds, &cache)?;
            print!("{}", lab::up_summary(&state, t0.elapsed()));
            Ok(crate::exit::OK)
        }
        LabCommand::Down { dir } => {
            let t0 = Instant::now();
            let s = lab::down(&dir)?;
            if s.found {
                println!(
                    "lab down: {} removed in {:.1} s ({} namespaces, {} links, {} processes)",
                    s.dir.display(),
                    t0.elapsed().as_secs_f64(),
                    s.netns,
                    s.links,
                    s.processes
                );
            } else {
                println!("lab down: no lab in {}: nothing to do", s.dir.display());
            }
            Ok(crate::exit::OK)
        }
        LabCommand::Status { dir } => {
            let (text, all_up) = lab::status(&dir)?;
            print!("{text}");
            Ok(if all_up {
                crate::exit::OK
            } else {
                crate::exit::HOST_PROBLEM
            })
        }
        LabCommand::Reboot { hosts, dir } => {
            let t0 = Instant::now();
            let done = lab::reboot(&dir, &hosts)?;
            print!("{}", lab::reboot_summary(&done, t0.elapsed()));
            Ok(if done.iter().all(|r| r.outcome.is_ok()) {
                crate::exit::OK
            } else {
                crate::exit::HOST_PROBLEM
            })
        }
        LabCommand::Rootfs {
            kinds,
            refresh,
            cache,
        } => {
            let mut distros = Vec::new();
            for k in kinds.iter().flat_map(|k| k.split(',')) {
                distros.push(Distro::parse(k).ok_or_else(|| {
                    let names: Vec<&str> = Distro::ALL.iter().map(|d| d.name()).collect();
                    Error::Lab(format!(
                        "{k:?} has no root filesystem: choose among {}",
                        names.join(", ")
                    ))
                })?);
            }
            let cache = lab::rootfs::cache_dir(cache.as_deref())?;
            let built = lab::build_rootfs(&distros, &cache, refresh)?;
            print!("{}", lab::rootfs_table(&built));
            Ok(crate::exit::OK)
        }
    }
}

/// Load the inventory as the command line asks, and show its warnings
/// (once per run: unused Ansible variables, ssh_config lines not honoured).
fn load_inventory(
    path: &std::path::Path,
    ssh_config: Option<&std::path::Path>,
) -> Result<Inventory> {
    let opts = LoadOptions {
        ssh_config: ssh_config.map(SshConfigChoice::from_arg),
    };
    let inventory = Inventory::load_with(path, &opts)?;
    for w in &inventory.warnings {
        report::warn(w);
    }
    Ok(inventory)
}

/// `--limit`, then `--shard`: the shards of any selection cover it exactly once.
fn select<'a>(
    inventory: &'a Inventory,
    limit: Option<&str>,
    shard: Option<Shard>,
) -> Result<Vec<&'a Host>> {
    let hosts = inventory.select(limit)?;
    let Some(shard) = shard else {
        return Ok(hosts);
    };
    let total = hosts.len();
    let mine: Vec<&Host> = hosts
        .into_iter()
        .filter(|h| shard.contains(h.name()))
        .collect();
    if mine.is_empty() {
        report::note(&format!(
            "shard {shard} holds none of the {total} selected host(s): nothing to do"
        ));
    }
    Ok(mine)
}

/// `rampart inventory`: the resolved hosts, and with `--playbook` the plays
/// of each. The playbook is the app layer's business: the inventory layer
/// knows nothing of plays.
fn inventory_command(args: &InventoryArgs) -> Result<u8> {
    let inv = load_inventory(&args.inventory, args.ssh_config.as_deref())?;
    let hosts = select(&inv, args.limit.as_deref(), args.shard)?;
    let playbook = match &args.playbook {
        Some(p) => Some(Playbook::load(p)?),
        None => None,
    };
    if let Some(pb) = &playbook {
        for w in pb.unknown_host_names(&inv) {
            report::warn(&w.to_string());
        }
    }
    let plays = playbook.as_ref().map(|pb| {
        hosts
            .iter()
            .map(|h| pb.plan(&inv, h).map(|p| p.plays).unwrap_or_default())
            .collect()
    });
    let listing = report::inventory::Listing {
        inventory: &inv.path,
        playbook: args.playbook.as_deref(),
        hosts,
        plays,
    };
    let out = report::inventory::render(&listing, args.format)?;
    report::print(out.as_bytes())?;
    Ok(crate::exit::OK)
}

/// Passwords read once per run, by environment variable name.
fn password_for(
    var: &str,
    cache: &mut std::collections::BTreeMap<String, String>,
    ask: bool,
) -> Result<String> {
    if let Some(p) = cache.get(var) {
        return Ok(p.clone());
    }
    let pw = match std::env::var(var) {
        Ok(p) if !p.is_empty() => p,
        _ if ask => report::ask_password(&format!("SSH password ({var}): "))
            .map_err(|e| Error::io("reading the password", e))?,
        _ => {
            return Err(Error::Usage(format!(
                "the inventory asks for password auth from ${var}, which is not set (set it, or pass --ask-pass)"
            )))
        }
    };
    cache.insert(var.to_string(), pw.clone());
    Ok(pw)
}

/// Fill the password of a host (or jump) that authenticates with one.
fn fill_password(
    reach: &mut Reach,
    cache: &mut std::collections::BTreeMap<String, String>,
    ask: bool,
) -> Result<()> {
    if let Some(var) = &reach.password_env {
        reach.password = Some(Password::new(password_for(var, cache, ask)?));
    }
    Ok(())
}

/// Everything decided before any host is contacted: bad input ends here.
pub fn prepare(args: &RunArgs, audit: bool) -> Result<(Vec<Job>, RunConfig, ConnectOptions)> {
    let inventory = load_inventory(&args.inventory, args.ssh_config.as_deref())?;
    let playbook = Playbook::load(&args.playbook)?;
    let hosts = select(&inventory, args.limit.as_deref(), args.shard)?;
    let serial = args
        .serial
        .as_deref()
        .map(Serial::parse)
        .transpose()
        .map_err(Error::Usage)?;
    let connect_timeout = Duration::from_secs(args.connect_timeout);
    let confirm_timeout = Duration::from_secs(args.confirm_timeout);
    // The switch must not fire while a healthy confirmation is still in
    // progress: a new TCP connect plus handshake may take 2x connect-timeout.
    if confirm_timeout < connect_timeout * 2 + Duration::from_secs(5) {
        return Err(Error::Usage(format!(
            "--confirm-timeout {}s is too short for --connect-timeout {}s: it must be at least 2 x connect-timeout + 5s ({}s)",
            args.confirm_timeout,
            args.connect_timeout,
            args.connect_timeout * 2 + 5
        )));
    }
    // A play naming a host or group this inventory lacks is likely a typo,
    // but playbooks are shared between inventories: warn, do not refuse.
    for w in playbook.unknown_host_names(&inventory) {
        report::warn(&w.to_string());
    }
    let mut passwords = std::collections::BTreeMap::new();
    let mut jobs = Vec::new();
    for host in hosts {
        let Some(plan) = playbook.plan(&inventory, host) else {
            continue;
        };
        let mut reach = host.reach.clone();
        fill_password(&mut reach, &mut passwords, args.ask_pass)?;
        for jump in &mut reach.jumps {
            fill_password(jump, &mut passwords, args.ask_pass)?;
        }
        // An ssh_config ConnectTimeout for this host takes the place of
        // --connect-timeout, and the switch must still outlast a confirmation.
        let connect_timeout = reach.connect_timeout.unwrap_or(connect_timeout);
        if confirm_timeout < connect_timeout * 2 + Duration::from_secs(5) {
            return Err(Error::Usage(format!(
                "--confirm-timeout {}s is too short for host {}, whose ConnectTimeout is {}s (ssh_config): it must be at least 2 x connect timeout + 5s ({}s)",
                args.confirm_timeout,
                reach.name,
                connect_timeout.as_secs(),
                connect_timeout.as_secs() * 2 + 5
            )));
        }
        jobs.push(Job {
            reach,
            plan,
            check: audit || args.check,
            predict: !args.no_predict,
            trace: args.verbose >= 2,
            confirm_timeout,
            connect_timeout,
        });
    }
    let cfg = RunConfig {
        forks: args.forks as usize,
        serial,
        max_fail_percent: args.max_fail_percent,
    };
    let opts = ConnectOptions {
        connect_timeout,
        exec_timeout: (connect_timeout * 3).max(Duration::from_secs(30)),
        accept_new_host_keys: args.accept_new_host_keys,
    };
    Ok((jobs, cfg, opts))
}

/// `rampart apply` / `rampart audit`.
fn run_fleet_command(args: RunArgs, audit: bool) -> Result<u8> {
    let (jobs, cfg, opts) = prepare(&args, audit)?;
    let command = if audit { "audit" } else { "apply" };
    let check = audit || args.check;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(cfg.forks.clamp(1, 2000) + 8)
        .build()
        .map_err(|e| Error::io("starting the runtime", e))?;
    let started = Instant::now();
    let reports = rt.block_on(async move {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let reporter = tokio::spawn(report::progress::drive(
            rx,
            report::progress::Mode::detect(),
            args.verbose,
        ));
        let signals = spawn_signal_watch(Arc::clone(&stop), tx.clone());
        // A jump session carries the connections of the hosts in flight
        // behind it: at most two each (A, and B while confirming).
        let connector = Arc::new(SshConnector::new(opts).with_jump_channels(cfg.forks * 2));
        let reports = runner::run_fleet(jobs, cfg, connector, tx, stop).await;
        // The watcher holds a sender: end it so the reporter sees the channel close.
        signals.abort();
        let _ = signals.await;
        let _ = reporter.await;
        reports
    });
    let summary = RunSummary {
        command: command.to_string(),
        playbook: args.playbook.display().to_string(),
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        check,
        shard: args.shard,
    };
    report::finish(&summary, &reports, &args)?;
    Ok(report::exit_code(&reports))
}

/// First SIGINT/SIGTERM: start no new host, let in-flight ones finish or
/// roll back. Second: exit at once; the dead-man switches protect the hosts.
fn spawn_signal_watch(
    stop: Arc<AtomicBool>,
    tx: tokio::sync::mpsc::UnboundedSender<Event>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return,
            };
        let mut signals = 0;
        loop {
            tokio::select! {
                r = tokio::signal::ctrl_c() => { if r.is_err() { return; } }
                _ = term.recv() => {}
            }
            signals += 1;
            if signals == 1 {
                stop.store(true, Ordering::SeqCst);
                let _ = tx.send(Event::Stopping {
                    reason: "interrupted: no new host starts; in-flight hosts finish or roll back (again to exit now)".into(),
                });
            } else {
                eprintln!("rampart: interrupted twice: exiting now; armed dead-man switches restore their hosts");
                std::process::exit(130);
            }
        }
    })
}
