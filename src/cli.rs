//! The command line, and nothing else: clap's derive types for every command
//! and flag. No behaviour lives here, so the whole surface of the tool can be
//! read in one file.
//!
//! Flags a CI job tends to set once for every step (`--forks`, the timeouts,
//! `--format`) can also come from `RAMPART_*` environment variables; a flag
//! on the command line beats the variable.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// rampart: harden fleets of freshly rented VPSes over SSH.
#[derive(Debug, Parser)]
#[command(name = "rampart", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Converge every matched host to the playbook's firewall, with rollback.
    Apply(RunArgs),
    /// Read-only: report drift between hosts and the playbook (same as apply --check).
    Audit(RunArgs),
    /// Print the iptables-restore input for one host, offline.
    Render(RenderArgs),
    /// List the resolved hosts (how each is reached, and why), offline.
    Inventory(InventoryArgs),
    /// Work on JSON reports of earlier runs (merge the shards of a CI matrix).
    Report(ReportArgs),
    /// Print a shell completion script (bash, zsh, fish, ...) on stdout.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) on stdout: `rampart man > rampart.1`.
    Man,
    /// A local throwaway fleet of namespaced hosts (Linux, root).
    Lab(LabArgs),
}

/// Output format of a run's report on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Format {
    #[default]
    Human,
    Json,
}

#[derive(Debug, Args, Clone)]
pub struct RunArgs {
    /// The playbook (YAML list of plays).
    pub playbook: PathBuf,
    /// The inventory: rampart YAML, or an Ansible INI/YAML inventory.
    #[arg(short = 'i', long = "inventory")]
    pub inventory: PathBuf,
    /// Host names, group names, globs and !exclusions, comma-separated.
    #[arg(short = 'l', long)]
    pub limit: Option<String>,
    /// Only the K-th of N stable parts of the selected hosts (by a hash of
    /// the name), so that N CI jobs cover the fleet exactly once.
    #[arg(long, value_name = "K/N", value_parser = crate::inventory::Shard::parse)]
    pub shard: Option<crate::inventory::Shard>,
    /// OpenSSH client config to read (default ~/.ssh/config when it exists); `none`: read none.
    #[arg(long, value_name = "PATH|none")]
    pub ssh_config: Option<PathBuf>,
    /// How many hosts are worked on at once.
    #[arg(short = 'f', long, env = "RAMPART_FORKS", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=2000))]
    pub forks: u32,
    /// Change nothing: report what would change (drift).
    #[arg(long)]
    pub check: bool,
    /// Show each host's change as a diff.
    #[arg(long)]
    pub diff: bool,
    /// Report format on stdout.
    #[arg(long, value_enum, env = "RAMPART_FORMAT", default_value_t = Format::Human)]
    pub format: Format,
    /// Seconds before the dead-man switch restores the previous rules.
    #[arg(long, env = "RAMPART_CONFIRM_TIMEOUT", default_value_t = 30, value_parser = clap::value_parser!(u64).range(5..=3600))]
    pub confirm_timeout: u64,
    /// Seconds allowed for the TCP connect and the SSH handshake (an
    /// ssh_config ConnectTimeout for a host takes its place for that host).
    #[arg(long, env = "RAMPART_CONNECT_TIMEOUT", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub connect_timeout: u64,
    /// Trust and record the key of a host not yet in known_hosts (a changed key always fails).
    #[arg(long)]
    pub accept_new_host_keys: bool,
    /// Converge in batches: a number of hosts, or a percentage like 10%.
    #[arg(long)]
    pub serial: Option<String>,
    /// Stop the rollout when more than this percentage of hosts failed.
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=100))]
    pub max_fail_percent: Option<u8>,
    /// Also write a JUnit XML report here: one testcase per host.
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Ask once (on the terminal, without echo) for the SSH password of
    /// hosts that use password_env and whose variable is not set.
    #[arg(long)]
    pub ask_pass: bool,
    /// Do not predict a lockout before applying (the new rules are then
    /// tried for real, and rolled back if a fresh connection fails).
    #[arg(long)]
    pub no_predict: bool,
    /// More detail on stderr: -v a line per host and step with timings,
    /// -vv also every step sent to a host and what it printed.
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Args, Clone)]
pub struct RenderArgs {
    pub playbook: PathBuf,
    #[arg(short = 'i', long = "inventory")]
    pub inventory: PathBuf,
    /// The host to render for.
    #[arg(long)]
    pub host: String,
    /// Render the IPv6 (ip6tables-restore) ruleset instead of IPv4.
    #[arg(long)]
    pub ipv6: bool,
}

#[derive(Debug, Args, Clone)]
pub struct InventoryArgs {
    #[arg(short = 'i', long = "inventory")]
    pub inventory: PathBuf,
    #[arg(short = 'l', long)]
    pub limit: Option<String>,
    /// Only the K-th of N parts of the selected hosts (see `apply --shard`).
    #[arg(long, value_name = "K/N", value_parser = crate::inventory::Shard::parse)]
    pub shard: Option<crate::inventory::Shard>,
    /// OpenSSH client config to read (default ~/.ssh/config when it exists); `none`: read none.
    #[arg(long, value_name = "PATH|none")]
    pub ssh_config: Option<PathBuf>,
    /// Also show which plays of this playbook match each host.
    #[arg(long)]
    pub playbook: Option<PathBuf>,
    #[arg(long, value_enum, env = "RAMPART_FORMAT", default_value_t = Format::Human)]
    pub format: Format,
}

#[derive(Debug, Args, Clone)]
pub struct ReportArgs {
    #[command(subcommand)]
    pub command: ReportCommand,
}

#[derive(Debug, Subcommand, Clone)]
pub enum ReportCommand {
    /// Combine the JSON reports of the shards of one run into one report
    /// and one exit code.
    Merge(MergeArgs),
}

#[derive(Debug, Args, Clone)]
pub struct MergeArgs {
    /// JSON reports (`--format json` output of apply/audit), one per shard.
    #[arg(required = true, value_name = "REPORT.json")]
    pub reports: Vec<PathBuf>,
    /// Also write a JUnit XML report of the merged run here.
    #[arg(long)]
    pub junit: Option<PathBuf>,
    /// Format of the merged report on stdout.
    #[arg(long, value_enum, env = "RAMPART_FORMAT", default_value_t = Format::Human)]
    pub format: Format,
    /// Show each host's diff in the human report.
    #[arg(long)]
    pub diff: bool,
}

#[derive(Debug, Args, Clone)]
pub struct LabArgs {
    #[command(subcommand)]
    pub command: LabCommand,
}

#[derive(Debug, Subcommand, Clone)]
pub enum LabCommand {
    /// Bring up N hosts (rebuilds any lab already in the same dir).
    Up {
        #[arg(value_parser = clap::value_parser!(u32).range(1..=1000))]
        n: u32,
        #[arg(long, default_value = crate::lab::DEFAULT_DIR)]
        dir: PathBuf,
        /// Kinds given to hosts round-robin, comma-separated: real root
        /// filesystems debian11, debian12, debian13, debian12-legacy,
        /// busybox (built once with debootstrap, then cached), or
        /// personalities on this machine's userland: centos6, rocky9,
        /// ubuntu22. Default: the personalities centos6, rocky9, debian12,
        /// ubuntu22.
        #[arg(long, value_delimiter = ',')]
        distros: Vec<String>,
        /// Where root filesystems are cached (default: $RAMPART_LAB_CACHE,
        /// else /srv/rampart-cache).
        #[arg(long)]
        cache: Option<PathBuf>,
    },
    /// Remove every namespace, link, process and mount the lab made.
    Down {
        #[arg(long, default_value = crate::lab::DEFAULT_DIR)]
        dir: PathBuf,
    },
    /// Show the lab's hosts and whether their sshd answers.
    Status {
        #[arg(long, default_value = crate::lab::DEFAULT_DIR)]
        dir: PathBuf,
    },
    /// Power-cycle hosts: kill every process, reset every netfilter table,
    /// run the boot-time loaders of persisted rules, start sshd again.
    Reboot {
        /// Host names (h001 ...), or `all`.
        #[arg(required = true)]
        hosts: Vec<String>,
        #[arg(long, default_value = crate::lab::DEFAULT_DIR)]
        dir: PathBuf,
    },
    /// Build the root filesystems of these kinds ahead of time (all when
    /// none is named), and show what each runs: OpenSSH, iptables, backend.
    Rootfs {
        /// debian11, debian12, debian13, debian12-legacy, busybox.
        kinds: Vec<String>,
        /// Build again even when cached (labs running on the old one keep it).
        #[arg(long)]
        refresh: bool,
        /// Where root filesystems are cached (default: $RAMPART_LAB_CACHE,
        /// else /srv/rampart-cache).
        #[arg(long)]
        cache: Option<PathBuf>,
    },
}
