//! rampart's own boot-time loader (play key `boot: ensure`): where nothing
//! on a host loads the persisted rules at boot, a minimal loader of
//! rampart's is installed and enabled, for the init system that will boot
//! the host (docs/design.md, "Persistence and boot"):
//! - systemd: `rampart-firewall.service`, wanted by `sysinit.target`,
//!   before `network-pre.target`;
//! - sysvinit: `/etc/init.d/rampart-firewall`, linked from `rcS.d` (Debian)
//!   or `rc2.d`..`rc5.d`;
//! - OpenRC: `/etc/init.d/rampart-firewall` in the `boot` runlevel.
//!
//! Each runs `/etc/rampart/firewall-load`, which restores the persisted
//! files. No package, no network: a few small files and links.

use super::facts::Init;
use super::script::{self, Kind, Script};

/// The loader every flavour runs.
pub const LOADER_PATH: &str = "/etc/rampart/firewall-load";

const SERVICE: &str = include_str!("scripts/boot/rampart-firewall.service");
const INIT_SYSV: &str = include_str!("scripts/boot/init-sysv.sh");
const INIT_OPENRC: &str = include_str!("scripts/boot/init-openrc.sh");

/// The boot step that installs the loader for `init`, restoring `v4` and
/// `v6` (the persisted files), or None where the init is not known.
/// `has_rcs`: the host boots sysvinit scripts from /etc/rcS.d.
pub fn install_step(init: Init, has_rcs: bool, v4: &str, v6: &str) -> Option<(Script, String)> {
    let loader = Script::new(Kind::FirewallLoad)
        .set("rp_file_v4", v4)
        .set("rp_file_v6", v6)
        .file();
    let (service_path, text, mode, links, reload, what): (&str, &str, &str, Vec<String>, bool, &str) = match init {
        Init::Systemd { running } => (
            "/etc/systemd/system/rampart-firewall.service",
            SERVICE,
            "644",
            vec![
                "/etc/systemd/system/sysinit.target.wants/rampart-firewall.service /etc/systemd/system/rampart-firewall.service".into(),
            ],
            running,
            "rampart-firewall.service (systemd)",
        ),
        Init::SysV => {
            let links = if has_rcs {
                vec!["/etc/rcS.d/S01rampart-firewall ../init.d/rampart-firewall".to_string()]
            } else {
                (2..=5)
                    .map(|n| format!("/etc/rc{n}.d/S07rampart-firewall ../init.d/rampart-firewall"))
                    .collect()
            };
            ("/etc/init.d/rampart-firewall", INIT_SYSV, "755", links, false, "/etc/init.d/rampart-firewall (sysvinit)")
        }
        Init::OpenRc => (
            "/etc/init.d/rampart-firewall",
            INIT_OPENRC,
            "755",
            vec!["/etc/runlevels/boot/rampart-firewall /etc/init.d/rampart-firewall".into()],
            false,
            "/etc/init.d/rampart-firewall (OpenRC, boot runlevel)",
        ),
        Init::Unknown => return None,
    };
    let step = Script::new(Kind::Boot)
        .set("rp_loader_path", LOADER_PATH)
        .set("rp_loader_text", loader.trim_end())
        .set("rp_service_path", service_path)
        .set("rp_service_text", text.trim_end())
        .set("rp_service_mode", mode)
        .set("rp_links", script::lines(&links))
        .set("rp_reload", if reload { "yes" } else { "no" });
    Some((step, what.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_init_gets_its_own_files_and_links() {
        let (s, what) = install_step(
            Init::Systemd { running: false },
            false,
            "/etc/iptables/rules.v4",
            "/etc/iptables/rules.v6",
        )
        .expect("systemd");
        assert!(what.contains("systemd"));
        assert_eq!(
            s.get("rp_service_path"),
            Some("/etc/systemd/system/rampart-firewall.service")
        );
        assert!(s
            .get("rp_links")
            .is_some_and(|l| l.contains("sysinit.target.wants")));
        assert!(s
            .get("rp_loader_text")
            .is_some_and(|t| t.contains("rp_file_v4=/etc/iptables/rules.v4")));
        let (s, _) = install_step(Init::SysV, true, "/a", "/b").expect("sysv");
        assert_eq!(
            s.get("rp_links"),
            Some("/etc/rcS.d/S01rampart-firewall ../init.d/rampart-firewall\n")
        );
        let (s, _) = install_step(Init::SysV, false, "/a", "/b").expect("sysv");
        assert_eq!(s.get("rp_links").map(|l| l.lines().count()), Some(4));
        let (s, _) = install_step(Init::OpenRc, false, "/a", "/b").expect("openrc");
        assert!(s
            .get("rp_service_text")
            .is_some_and(|t| t.starts_with("#!/sbin/openrc-run")));
        assert!(install_step(Init::Unknown, false, "/a", "/b").is_none());
    }

    #[test]
    fn the_unit_loads_before_the_network() {
        assert!(SERVICE.contains("Before=network-pre.target"));
        assert!(SERVICE.contains(&format!("ExecStart=/bin/sh {LOADER_PATH}")));
        assert!(INIT_SYSV.contains(LOADER_PATH) && INIT_OPENRC.contains(LOADER_PATH));
    }
}
