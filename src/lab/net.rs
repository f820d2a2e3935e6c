//! Names, addresses and the machine-side plumbing of a lab: the bridge, the
//! network namespaces, the veths, and the processes living in them.
//!
//! Several labs run side by side (integration tests run in parallel, and
//! several checkouts share one machine). Each lab takes an index k in 0..128
//! by creating the bridge `rpbr{k}`: `ip link add` is atomic, so whoever
//! creates it owns k, and everything else is named after k. The bridge's
//! alias (`/sys/class/net/rpbr{k}/ifalias`) records the lab dir, so a lab can
//! be found and removed even without its state file, and a lab never
//! touches an index whose bridge names another dir.
//!
//! Lookups read /sys/class/net, /run/netns and /proc directly rather than
//! parsing `ip` output: faster with hundreds of hosts, and no format to drift.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::net::Ipv4Addr;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use super::state::HostState;
use super::sys;
use crate::error::{Error, Result};

/// How many labs fit in 198.18.0.0/15 with a /22 each.
pub const MAX_LABS: u32 = 128;
/// Hosts per lab: a /22 minus network, bridge and broadcast addresses.
pub const MAX_HOSTS: usize = 1021;
/// Prefix length of a lab's subnet.
pub const PREFIX: u8 = 22;

/// Where network namespaces named by `ip netns` live.
const NETNS_DIR: &str = "/run/netns";
const SYS_NET: &str = "/sys/class/net";

pub fn bridge_name(k: u32) -> String {
    format!("rpbr{k}")
}

pub fn netns_name(k: u32, host: &str) -> String {
    format!("rp{k}-{host}")
}

/// Machine side of host `i`'s veth; at most 10 characters (`rp127h1021`),
/// under the kernel's 15.
pub fn veth_name(k: u32, i: usize) -> String {
    format!("rp{k}h{i}")
}

/// First address of lab k's /22.
pub fn subnet_base(k: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 0)) + k * 1024)
}

/// The bridge's address (.1 of the /22).
pub fn gateway(k: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(subnet_base(k)) + 1)
}

/// Address of host `i` (1-based): gateway + i.
pub fn host_address(k: u32, i: usize) -> Ipv4Addr {
    // i <= MAX_HOSTS, checked by the caller, so this stays inside the /22.
    Ipv4Addr::from(u32::from(subnet_base(k)) + 1 + i as u32)
}

/// MAC address of host `i`'s eth0: fixed, so that the machine and the
/// bridge can know every host in advance (see [`crate::lab`]'s ARP note).
/// Locally administered: 02:72:70 ("rp"), then k, then i.
pub fn host_mac(k: u32, i: usize) -> String {
    format!(
        "02:72:70:{:02x}:{:02x}:{:02x}",
        k & 0xff,
        (i >> 8) & 0xff,
        i & 0xff
    )
}

/// MAC address of lab k's bridge (i never reaches 0xffff).
pub fn bridge_mac(k: u32) -> String {
    format!("02:72:70:{:02x}:ff:ff", k & 0xff)
}

/// The alias a lab writes on its bridge: names its dir.
pub fn bridge_alias(dir: &Path) -> String {
    format!("rampart-lab:{}", dir.display())
}

/// The alias of bridge k: Ok(None) if the bridge does not exist, Some("")
/// for a bridge that was just created and has no alias yet.
pub fn bridge_owner(k: u32) -> Option<String> {
    let dev = Path::new(SYS_NET).join(bridge_name(k));
    if !dev.exists() {
        return None;
    }
    Some(
        fs::read_to_string(dev.join("ifalias"))
            .map(|s| s.trim_end_matches('\n').to_string())
            .unwrap_or_default(),
    )
}

/// Indices of every bridge whose alias names `dir`.
pub fn bridges_of(dir: &Path) -> Vec<u32> {
    let alias = bridge_alias(dir);
    let mut ks: Vec<u32> = list_dir(SYS_NET)
        .iter()
        .filter_map(|n| n.strip_prefix("rpbr")?.parse::<u32>().ok())
        .filter(|k| bridge_owner(*k).as_deref() == Some(alias.as_str()))
        .collect();
    ks.sort_unstable();
    ks
}

/// Take a free lab index for `dir`: create `rpbr{k}` for the first k where
/// that succeeds, then label it with the dir.
pub fn allocate(tools: &sys::Tools, dir: &Path) -> Result<u32> {
    for k in 0..MAX_LABS {
        if bridge_owner(k).is_some() {
            continue;
        }
        let out = sys::run(
            Command::new(&tools.ip).args([
                "link",
                "add",
                &bridge_name(k),
                "address",
                &bridge_mac(k),
                "type",
                "bridge",
            ]),
            None,
            Duration::from_secs(10),
        )?;
        if out.status.success() {
            // sysfs is quickest; `ip` where /sys is read-only (some containers).
            let alias = Path::new(SYS_NET).join(bridge_name(k)).join("ifalias");
            if fs::write(&alias, bridge_alias(dir)).is_err() {
                sys::run_ok(
                    Command::new(&tools.ip)
                        .args(["link", "set", "dev", &bridge_name(k), "alias"])
                        .arg(bridge_alias(dir)),
                    None,
                    Duration::from_secs(10),
                )?;
            }
            return Ok(k);
        }
        let err = String::from_utf8_lossy(&out.stderr);
        if !err.contains("File exists") {
            return Err(Error::Lab(format!(
                "cannot create bridge {}: {}",
                bridge_name(k),
                err.trim()
            )));
        }
        // Someone else took k between our look and our add: try the next one.
    }
    Err(Error::Lab(format!(
        "all {MAX_LABS} lab indices are taken (bridges rpbr0..rpbr{}): remove labs with `rampart lab down --dir D`",
        MAX_LABS - 1
    )))
}

/// The `ip -batch` lines that give host `h` its namespace and plug it into
/// `bridge`, and the `bridge -batch` line of its static forwarding entry.
/// No ARP anywhere (see [`crate::lab`]): the machine gets a permanent
/// neighbour entry for the host, the bridge a static forwarding entry.
pub fn plug_lines(h: &HostState, bridge: &str) -> (Vec<String>, String) {
    let lines = vec![
        format!("netns add {}", h.netns),
        format!(
            "link add {} type veth peer name eth0 address {} netns {}",
            h.veth, h.mac, h.netns
        ),
        format!("link set {} master {bridge} up", h.veth),
        // Hosts' IPv6 chatter (DAD, router solicitations, MLD) is not
        // flooded to every other host: with N hosts that is N² deliveries.
        // The machine still sees it, and what it sends still reaches all.
        format!("link set {} type bridge_slave mcast_flood off", h.veth),
        format!(
            "neigh replace {} lladdr {} dev {bridge} nud permanent",
            h.address, h.mac
        ),
    ];
    (
        lines,
        format!("fdb replace {} dev {} master static", h.mac, h.veth),
    )
}

/// Give a host whose processes are all gone a new network namespace and
/// veth, with the same names, address and MAC (a reboot: everything the
/// old namespace held, every netfilter table of both backends included,
/// is gone). The veth is deleted first: that takes its peer, the host's
/// eth0, along at once, so the name is free again at once; the old,
/// now empty namespace goes whenever the kernel gets to it.
pub fn replug(tools: &sys::Tools, k: u32, h: &HostState) -> Result<()> {
    let mut unplug = Vec::new();
    if Path::new(SYS_NET).join(&h.veth).exists() {
        unplug.push(format!("link del {}", h.veth));
    }
    if Path::new(NETNS_DIR).join(&h.netns).exists() {
        unplug.push(format!("netns del {}", h.netns));
    }
    ip_batch(tools, &unplug, false)?;
    let (plug, fdb) = plug_lines(h, &bridge_name(k));
    ip_batch(tools, &plug, false)?;
    bridge_batch(tools, &[fdb], false)
}

/// Network namespaces of lab k (`rp{k}-*`), by name.
pub fn netns_of(k: u32) -> Vec<String> {
    let prefix = format!("rp{k}-");
    let mut v: Vec<String> = list_dir(NETNS_DIR)
        .into_iter()
        .filter(|n| n.starts_with(&prefix))
        .collect();
    v.sort();
    v
}

/// Links of lab k on the machine: its veths `rp{k}h{i}`.
pub fn veths_of(k: u32) -> Vec<String> {
    let prefix = format!("rp{k}h");
    let mut v: Vec<String> = list_dir(SYS_NET)
        .into_iter()
        .filter(|n| {
            n.strip_prefix(&prefix)
                .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()))
        })
        .collect();
    v.sort();
    v
}

fn list_dir(dir: &str) -> Vec<String> {
    fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// The inode identifying a named network namespace (what /proc/PID/ns/net points to).
pub fn netns_inode(name: &str) -> Option<u64> {
    fs::metadata(Path::new(NETNS_DIR).join(name))
        .ok()
        .map(|m| m.ino())
}

fn net_inode_of_pid(pid: u32) -> Option<u64> {
    let link = fs::read_link(format!("/proc/{pid}/ns/net")).ok()?;
    let s = link.to_str()?;
    s.strip_prefix("net:[")?.strip_suffix(']')?.parse().ok()
}

/// Processes in each of the given network namespaces (by inode), from one
/// scan of /proc. The machine's own namespace is never among the results,
/// whatever the caller passes: its processes are not the lab's to kill.
pub fn pids_in(inodes: &HashSet<u64>) -> HashMap<u64, Vec<u32>> {
    let root = net_inode_of_pid(1);
    let mut found: HashMap<u64, Vec<u32>> = HashMap::new();
    for name in list_dir("/proc") {
        let Ok(pid) = name.parse::<u32>() else {
            continue;
        };
        if let Some(ino) = net_inode_of_pid(pid) {
            if Some(ino) != root && inodes.contains(&ino) {
                found.entry(ino).or_default().push(pid);
            }
        }
    }
    found
}

/// Processes in the named network namespace (`ip netns pids`).
pub fn netns_pids(name: &str) -> Vec<u32> {
    let Some(ino) = netns_inode(name) else {
        return Vec::new();
    };
    let mut v = pids_in(&HashSet::from([ino]))
        .remove(&ino)
        .unwrap_or_default();
    v.sort_unstable();
    v
}

fn mnt_inode_of_pid(pid: &str) -> Option<u64> {
    let link = fs::read_link(format!("/proc/{pid}/ns/mnt")).ok()?;
    let s = link.to_str()?;
    s.strip_prefix("mnt:[")?.strip_suffix(']')?.parse().ok()
}

/// SIGKILL every process in the named namespaces until none is left (a
/// dying sshd may fork once more), for at most `timeout`. Processes that
/// share a mount namespace with them die too (say, an `nsenter -m` into a
/// host that skipped its network namespace): they would keep the host's
/// overlays mounted. The machine's own mount namespace and ours are never
/// taken as a host's. Returns how many processes were killed, or the
/// survivors as an error.
pub fn kill_all_in(netns: &[String], timeout: Duration) -> Result<usize> {
    let inodes: HashSet<u64> = netns.iter().filter_map(|n| netns_inode(n)).collect();
    if inodes.is_empty() {
        return Ok(0);
    }
    let spared: HashSet<u64> = ["1", "self"]
        .iter()
        .filter_map(|p| mnt_inode_of_pid(p))
        .collect();
    let root_net = net_inode_of_pid(1);
    let deadline = Instant::now() + timeout;
    let mut killed = HashSet::new();
    loop {
        let mut pids: Vec<u32> = pids_in(&inodes).into_values().flatten().collect();
        // Mount namespaces of this scan only, never remembered across scans:
        // once a host's processes are gone the kernel hands its namespace
        // number to the next `unshare -m` (another lab booting a host right
        // now), and killing by a remembered number would kill that host.
        let mounts: HashSet<u64> = pids
            .iter()
            .filter_map(|p| mnt_inode_of_pid(&p.to_string()))
            .filter(|m| !spared.contains(m))
            .collect();
        if !mounts.is_empty() {
            let me = std::process::id();
            for name in list_dir("/proc") {
                let Ok(pid) = name.parse::<u32>() else {
                    continue;
                };
                // Only a process in our namespaces or in the machine's network
                // namespace (an `nsenter -m` that skipped the network one) can
                // be ours; one in another lab's network namespace never is.
                let net = net_inode_of_pid(pid);
                let ours_by_net = net.is_some_and(|n| inodes.contains(&n)) || net == root_net;
                if pid > 1
                    && pid != me
                    && !pids.contains(&pid)
                    && ours_by_net
                    && mnt_inode_of_pid(&name).is_some_and(|m| mounts.contains(&m))
                {
                    pids.push(pid);
                }
            }
        }
        if pids.is_empty() {
            return Ok(killed.len());
        }
        if Instant::now() >= deadline {
            let list: Vec<String> = pids
                .iter()
                .map(|p| format!("{p} ({})", sys::cmdline(*p)))
                .collect();
            return Err(Error::Lab(format!(
                "processes survived SIGKILL: {}",
                list.join(", ")
            )));
        }
        for pid in pids {
            sys::signal(pid, libc::SIGKILL);
            killed.insert(pid);
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Run `ip -batch -` on these lines. With `force`, keep going past failed
/// lines (tear-down of a half-built lab), and report nothing.
pub fn ip_batch(tools: &sys::Tools, lines: &[String], force: bool) -> Result<()> {
    batch(&tools.ip, lines, force)
}

/// Run `bridge -batch -` on these lines (see [`ip_batch`]).
pub fn bridge_batch(tools: &sys::Tools, lines: &[String], force: bool) -> Result<()> {
    batch(&tools.bridge, lines, force)
}

fn batch(program: &Path, lines: &[String], force: bool) -> Result<()> {
    if lines.is_empty() {
        return Ok(());
    }
    let mut input = lines.join("\n");
    input.push('\n');
    // Generous: a few ms per line on a loaded 2-core machine.
    let timeout = Duration::from_secs(30) + Duration::from_millis(20) * lines.len() as u32;
    let mut cmd = Command::new(program);
    if force {
        cmd.arg("-force");
    }
    cmd.args(["-batch", "-"]);
    if force {
        sys::run(&mut cmd, Some(input.as_bytes()), timeout)?;
        Ok(())
    } else {
        sys::run_ok(&mut cmd, Some(input.as_bytes()), timeout).map(|_| ())
    }
}
