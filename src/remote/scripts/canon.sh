# canon.sh: read-only, over connection A, only when some desired rule is
# one rampart cannot print exactly offline: the host's own iptables loads
# the desired filter table into a throwaway network namespace and prints it
# back. That printing is what verify compares with and what the diff shows.
# (docs/design.md, "Canonical form")
#
# Parameters: rp_families (v4 v6), rp_probe_v4 and rp_probe_v6 (the
# iptables-restore input to load; empty: that family needs no probe).
# Prints per family `canonF`: the marker line once the namespace exists,
# then what -save printed in it; `rccanonF`: the status (125: no unshare
# on this host); and `errcanonF`: what the tools said on stderr.
# shellcheck shell=sh disable=SC2154,SC2034

# rampart_canon TOOL [-w N]: load stdin into a new, empty network namespace
# and print its filter table. Nothing stays behind: the kernel destroys the
# namespace with its last process (this shell, milliseconds later), and no
# file is written. Legacy iptables would take the host's /run/xtables.lock
# (the mount namespace is the host's) and fail or wait while a real apply
# holds it; XTABLES_LOCKFILE=/dev/null (iptables 1.8.7 and later) gives it
# a lock of its own, and the wait makes two probes at once wait for each
# other. nf_tables iptables takes no lock.
rampart_canon() {
    command -v unshare >/dev/null 2>&1 || { echo "rampart: no unshare on this host" >&2; return 125; }
    # shellcheck disable=SC2016 # expanded by the inner shell
    XTABLES_LOCKFILE=/dev/null unshare -n -- sh -c 'echo rampart-canon-namespace && "$1-restore" $2 && "$1-save" -t filter' rampart-canon "$@"
}

exec 3>&1
for rp_f in $rp_families; do
    if [ "$rp_f" = v6 ]; then rp_probe=$rp_probe_v6; else rp_probe=$rp_probe_v4; fi
    [ -n "$rp_probe" ] || continue
    rp_tool "$rp_f"
    rp_w=
    if rp_has_wait "$rp_x-restore"; then rp_w="-w 5"; fi
    sec "canon$rp_f"
    # Its warnings apart from what it prints: a warning is not a rule.
    rp_err=$( { printf '%s\n' "$rp_probe" | rampart_canon "$rp_x" "$rp_w" >&3; } 2>&1)
    rp_st=$?
    sec "rccanon$rp_f"
    echo "$rp_st"
    sec "errcanon$rp_f"
    printf '%s\n' "$rp_err"
done
