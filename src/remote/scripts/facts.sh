# facts.sh: the first step on connection A, read-only: who runs the script,
# the OS family, the iptables backend and tools, firewalld/ufw, the init
# system and what loads the persisted rules at boot, the live rules and the
# persisted files. An audit of a compliant host is this step alone.
# (docs/design.md, "The transaction")
#
# Parameters: rp_state, rp_files (persisted files to read, one per line).
# Only regular files are read, never through a symlink: an audit reads
# nothing it should not.
# shellcheck shell=sh disable=SC2154,SC2034

sec uid
# The effective uid, from the shell's own /proc entry (no process), else id.
rp_uid=
if [ -r /proc/self/status ]; then
    while read -r rp_k rp_real rp_eff rp_rest; do
        if [ "$rp_k" = Uid: ]; then
            rp_uid=$rp_eff
            break
        fi
    done </proc/self/status
fi
case $rp_uid in '' | *[!0-9]*) rp_uid=$(id -u) ;; esac
echo "$rp_uid"
sec ssh_connection
printf '%s\n' "$rp_ssh"
sec os_release
rp_cat /etc/os-release
sec redhat_release
rp_cat /etc/redhat-release
sec debian_version
rp_cat /etc/debian_version
sec alpine_release
rp_cat /etc/alpine-release
sec iptables_v
iptables -V 2>&1
sec has
for rp_c in iptables-save iptables-restore ip6tables-save ip6tables-restore unshare flock systemd-run; do
    command -v "$rp_c" >/dev/null 2>&1 && echo "$rp_c"
done
sec ipv6
if [ -e /proc/net/if_inet6 ]; then echo enabled; else echo disabled; fi
sec firewalld
if [ -d "$rp_systemd" ] && command -v systemctl >/dev/null 2>&1; then
    systemctl is-active firewalld 2>/dev/null
fi
if command -v firewall-cmd >/dev/null 2>&1; then firewall-cmd --state 2>/dev/null; fi
sec ufw
if [ -r /etc/ufw/ufw.conf ]; then grep -i '^ENABLED=yes' /etc/ufw/ufw.conf; fi
# The init that will boot this host next: systemd when it runs now, or
# when /sbin/init is systemd and /etc/systemd/system exists; else OpenRC;
# else sysvinit-style /etc/init.d. (docs/design.md, "Persistence and boot")
sec init
if [ -d "$rp_systemd" ]; then
    echo systemd running
else
    case $(readlink -f /sbin/init 2>/dev/null) in
        */systemd) [ -d /etc/systemd/system ] && echo systemd ;;
    esac
fi
if [ -x /sbin/openrc-run ] || [ -x /sbin/openrc ]; then echo openrc; fi
if [ -d /etc/init.d ]; then echo sysv; fi
# Where a sysvinit boot starts early scripts: rcS.d (Debian), else rc3.d.
if [ -d /etc/rcS.d ]; then echo rcS; fi
sec loaders
for rp_l in \
    /etc/systemd/system/*.wants/netfilter-persistent.service \
    /etc/systemd/system/*.wants/iptables.service \
    /etc/systemd/system/*.wants/ip6tables.service \
    /etc/systemd/system/*.wants/rampart-firewall.service \
    /etc/rc[S2345].d/S*netfilter-persistent \
    /etc/rc[S2345].d/S*iptables-persistent \
    /etc/rc[S2345].d/S*iptables \
    /etc/rc[S2345].d/S*ip6tables \
    /etc/rc[S2345].d/S*rampart-firewall \
    /etc/runlevels/*/iptables \
    /etc/runlevels/*/ip6tables \
    /etc/runlevels/*/rampart-firewall; do
    if [ -e "$rp_l" ] || [ -L "$rp_l" ]; then echo "$rp_l"; fi
done
sec switch_state
rp_cat "$rp_state/switch.state"
sec save4
if command -v iptables-save >/dev/null 2>&1; then
    rp_xt iptables-save 2>&1
    echo "@@rc=$?"
fi
sec save6
if command -v ip6tables-save >/dev/null 2>&1; then
    rp_xt ip6tables-save 2>&1
    echo "@@rc=$?"
fi
rp_old_ifs=$IFS
IFS='
'
set -f
for rp_p in $rp_files; do
    IFS=$rp_old_ifs
    sec "file:$rp_p"
    if [ -L "$rp_p" ]; then
        echo symlink
    elif [ -f "$rp_p" ]; then
        echo present
        cat -- "$rp_p"
    elif [ -e "$rp_p" ]; then
        echo special
    else
        echo absent
    fi
done
set +f
IFS=$rp_old_ifs
