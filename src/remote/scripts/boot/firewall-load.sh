# firewall-load.sh: rampart's boot-time loader of the persisted rules,
# installed as /etc/rampart/firewall-load where nothing else loads them at
# boot (play key `boot: ensure`), and run by the unit or init script next
# to it. It restores what rampart persisted, IPv4 then IPv6; a missing file
# is skipped (a host without ip6tables), a failing restore makes the
# loader fail, so the init system says so. (docs/design.md, "Persistence
# and boot")
#
# Parameters (written into the installed file): rp_file_v4, rp_file_v6.
# shellcheck shell=sh disable=SC2154

PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
rc=0
if [ -f "$rp_file_v4" ]; then
    iptables-restore <"$rp_file_v4" || rc=1
fi
if [ -f "$rp_file_v6" ] && command -v ip6tables-restore >/dev/null 2>&1; then
    ip6tables-restore <"$rp_file_v6" || rc=1
fi
exit "$rc"
