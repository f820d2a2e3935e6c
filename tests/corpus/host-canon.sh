# shellcheck shell=sh disable=SC2016
# rampart's host canonicalisation (the same text as HOST_CANON_SH in
# src/firewall/hostcanon.rs; a unit test keeps the two equal). Source it,
# then: rampart_canon iptables|ip6tables < probe
rampart_canon() {
    command -v unshare >/dev/null 2>&1 || { echo "rampart: no unshare on this host" >&2; return 125; }
    XTABLES_LOCKFILE=/dev/null unshare -n -- sh -c 'echo rampart-canon-namespace && "$1-restore" -w 5 && "$1-save" -t filter' rampart-canon "$1"
}
