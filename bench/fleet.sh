#!/usr/bin/env bash
# rampart fleet benchmark. One lab fleet of N hosts, reset between runs
# (lab down, lab up), timed side by side in one run:
#
#   1. plain OpenSSH in parallel (xargs -P F), the minimum correct work:
#      one connection uploads the seed's rules, backs up, iptables-restores
#      and lists them; one fresh connection persists them. Twice: with
#      OpenSSH's default key exchange (sntrup761x25519-sha512 in OpenSSH 9,
#      post-quantum, whose key generation is most of the client's CPU), the
#      reference of every ratio; and with curve25519-sha256, the key
#      exchange rampart's libssh2 negotiates (libssh2 has no post-quantum
#      one), which compares the protocols alone;
#   2. rampart apply of playbooks/baseline.yml (the full transaction: both
#      families, test, backup, dead-man switch, confirm over a new
#      connection, verify, persist, boot loader);
#   3. the same apply again (every host already ok);
#   4. rampart audit of the fleet;
#   5. rampart apply of playbooks/lockout.yml: predicted, refused before
#      anything changes;
#   6. ansible-playbook doing rampart's transaction as an Ansible user
#      writes it (bench/ansible-baseline.yml: backup, iptables_state with
#      its async rollback, verify, persist). Ansible is installed from PyPI
#      into a venv when missing; it runs when N <= 300 (BENCH_ANSIBLE=1
#      always, 0 never).
#
# For every run: wall time, its ratio to OpenSSH, and from the hosts' own
# sshd logs (LogLevel VERBOSE) the connections and sessions (exec
# channels) per host; for rampart also peak RSS and CPU per host.
# The last line is the same figures tab-separated, for the README's table.
#
# Usage: sudo bench/fleet.sh [N hosts, default 100] [F forks, default 50]
# Needs root, the lab's packages (see README) and makes a release build.
# Environment: BENCH_DIR (the lab's dir, default /srv/rampart-bench),
# BENCH_VENV (Ansible's venv, default /srv/rampart-bench-venv),
# ANSIBLE_PLAYBOOK (an ansible-playbook to use instead of the venv's).
# shellcheck disable=SC2154 # W_*, C_*, M_*, K_* are set by measure (printf -v)
set -euo pipefail
N=${1:-100}
F=${2:-50}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=${BENCH_DIR:-/srv/rampart-bench}
VENV=${BENCH_VENV:-/srv/rampart-bench-venv}
OUT=$(mktemp -d /tmp/rampart-bench.XXXXXX)
BIN="$ROOT/target/release/rampart"
PLAYBOOK="$ROOT/playbooks/baseline.yml"
LOCKOUT="$ROOT/playbooks/lockout.yml"
# Every remote command of the OpenSSH and Ansible columns is bounded.
export HOST_TIMEOUT=120

case $N$F in *[!0-9]*) echo "usage: bench/fleet.sh [N] [F]" >&2; exit 2 ;; esac
[ "$(id -u)" = 0 ] || { echo "bench: run as root (the lab needs it)" >&2; exit 1; }
[ -x /usr/bin/time ] || apt-get install -y -qq time >/dev/null
(cd "$ROOT" && cargo build --release --locked -q)

cleanup() { "$BIN" lab down --dir "$DIR" >/dev/null 2>&1 || true; rm -rf "$OUT"; }
trap cleanup EXIT

# --- Ansible, for real -------------------------------------------------
want_ansible=${BENCH_ANSIBLE:-auto}
if [ "$want_ansible" = auto ]; then
    if [ "$N" -le 300 ]; then want_ansible=1; else want_ansible=0; fi
fi
if [ "$want_ansible" = 1 ] && [ -z "${ANSIBLE_PLAYBOOK:-}" ]; then
    if [ ! -x "$VENV/bin/ansible-playbook" ]; then
        echo "bench: installing Ansible from PyPI into $VENV"
        python3 -c 'import ensurepip' 2>/dev/null || apt-get install -y -qq python3-venv >/dev/null
        python3 -m venv "$VENV"
        "$VENV/bin/pip" install -q ansible
    fi
    ANSIBLE_PLAYBOOK="$VENV/bin/ansible-playbook"
fi

# --- the fleet ---------------------------------------------------------
fresh_fleet() {
    "$BIN" lab down --dir "$DIR" >/dev/null 2>&1 || true
    "$BIN" lab up "$N" --dir "$DIR" >"$OUT/lab-up.log" 2>&1 || {
        cat "$OUT/lab-up.log" >&2
        exit 1
    }
}

# "name address" per host, from the lab's inventory ("  h001: {address: X}").
hosts() {
    sed -nE 's/^  ([A-Za-z0-9_.-]+): \{address: "?([0-9a-fA-F.:]+)"?.*/\1 \2/p' "$DIR/inventory.yml"
}

# The size of every host's sshd log now: what a run adds comes after it.
mark_logs() {
    for d in "$DIR"/hosts/*/; do
        printf '%s %s\n' "$d" "$(stat -c %s "$d/sshd.log" 2>/dev/null || echo 0)"
    done >"$OUT/marks"
}

# "min-max" (or one number) of what the hosts' sshd logs gained since
# mark_logs: connections ("Accepted") and sessions ("Starting session").
count_logs() {
    while read -r d size; do
        tail -c "+$((size + 1))" "$d/sshd.log" 2>/dev/null |
            awk '/Accepted publickey for /{c++} /Starting session:/{s++} END{print c+0, s+0}'
    done <"$OUT/marks" | awk '
        NR == 1 { cmin = cmax = $1; smin = smax = $2 }
        { if ($1 < cmin) cmin = $1; if ($1 > cmax) cmax = $1
          if ($2 < smin) smin = $2; if ($2 > smax) smax = $2 }
        function r(a, b) { return a == b ? a : a "-" b }
        END { print r(cmin, cmax), r(smin, smax) }'
}

# measure NAME CMD...: run CMD under GNU time, its output in $OUT/NAME.out;
# sets W_NAME (wall s), C_NAME (CPU ms per host), M_NAME (peak RSS MiB),
# K_NAME ("connections sessions" per host).
measure() {
    local name=$1
    shift
    mark_logs
    /usr/bin/time -f '%e %U %S %M' -o "$OUT/$name.time" "$@" >"$OUT/$name.out" 2>&1 || true
    read -r wall user sys rss < <(tail -n 1 "$OUT/$name.time") || true
    printf -v "W_$name" '%.2f' "$wall"
    printf -v "C_$name" '%.1f' "$(awk -v u="$user" -v s="$sys" -v n="$N" 'BEGIN{print (u+s)*1000/n}')"
    printf -v "M_$name" '%.1f' "$(awk -v m="$rss" 'BEGIN{print m/1024}')"
    printf -v "K_$name" '%s' "$(count_logs)"
}

summary() { tr -d '\n ' <"$OUT/$1.out" | grep -o '"summary":{[^}]*}' || echo "(no summary: see below)"; }

# --- 1. plain OpenSSH --------------------------------------------------
# The rules are uploaded to a file before anything is restored: a restore
# fed from the session's stdin can commit while the client's EOF is still
# on its way, and that late packet of a connection conntrack never saw
# begin is NEW without SYN, which the seed's rules drop (the session then
# hangs). Fed from a file, the host speaks first after the restore, so
# conntrack sees the session as ESTABLISHED.
openssh_run() {
    SSH_CMD="ssh -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=$DIR/known_hosts"
    SSH_CMD="$SSH_CMD -i $DIR/id_ed25519 -o ConnectTimeout=10 -o ServerAliveInterval=5 -o ServerAliveCountMax=3"
    SSH_CMD="$SSH_CMD -o ControlMaster=no -o ControlPath=none ${BENCH_KEX:+-o KexAlgorithms=$BENCH_KEX}"
    export SSH_CMD SEED_RULES HOST_TIMEOUT
    # shellcheck disable=SC2016 # expanded by the sh of each host
    hosts | awk '{print $2}' | xargs -P "$F" -I{} sh -c '
        printf "%s\n" "$SEED_RULES" | timeout "$HOST_TIMEOUT" $SSH_CMD root@{} \
            "mkdir -p /var/lib/bench && cat > /var/lib/bench/rules.v4 && iptables-save > /var/lib/bench/backup.v4 && iptables-restore < /var/lib/bench/rules.v4 && iptables -L -n >/dev/null" &&
        timeout "$HOST_TIMEOUT" $SSH_CMD root@{} \
            "if [ -f /etc/redhat-release ]; then f=/etc/sysconfig/iptables; else mkdir -p /etc/iptables; f=/etc/iptables/rules.v4; fi; iptables-save > \$f.tmp && chmod 600 \$f.tmp && mv \$f.tmp \$f" &&
        echo "ok {}" || echo "FAILED {}"
    '
}

echo "rampart fleet benchmark: N=$N hosts, F=$F forks, $(nproc) cores, $(uname -r), $(ssh -V 2>&1)"
fresh_fleet
SEED_RULES=$("$BIN" render "$PLAYBOOK" -i "$DIR/inventory.yml" --host "$(hosts | awk 'NR==1{print $1}')")
export SEED_RULES
export -f hosts openssh_run
export DIR F
measure ssh bash -c openssh_run
ssh_failed=$(grep -c '^FAILED' "$OUT/ssh.out" || true)
fresh_fleet
export BENCH_KEX=curve25519-sha256
measure sshc bash -c openssh_run
unset BENCH_KEX
sshc_failed=$(grep -c '^FAILED' "$OUT/sshc.out" || true)

# --- 2-5. rampart ------------------------------------------------------
fresh_fleet
measure apply "$BIN" apply "$PLAYBOOK" -i "$DIR/inventory.yml" --forks "$F" --format json
measure rerun "$BIN" apply "$PLAYBOOK" -i "$DIR/inventory.yml" --forks "$F" --format json
measure audit "$BIN" audit "$PLAYBOOK" -i "$DIR/inventory.yml" --forks "$F" --format json
measure lockout "$BIN" apply "$LOCKOUT" -i "$DIR/inventory.yml" --forks "$F" --format json

# --- 6. Ansible --------------------------------------------------------
W_ansible=
if [ "$want_ansible" = 1 ]; then
    fresh_fleet
    {
        echo "[all]"
        hosts | awk '{printf "%s ansible_host=%s\n", $1, $2}'
        echo "[all:vars]"
        echo "ansible_user=root"
        echo "ansible_ssh_private_key_file=$DIR/id_ed25519"
        echo "ansible_ssh_common_args='-o UserKnownHostsFile=$DIR/known_hosts -o StrictHostKeyChecking=yes -o ServerAliveInterval=5'"
        echo "ansible_python_interpreter=/usr/bin/python3"
    } >"$OUT/ansible.ini"
    first=$(hosts | awk 'NR==1{print $1}')
    "$BIN" render "$PLAYBOOK" -i "$DIR/inventory.yml" --host "$first" >"$OUT/rules.v4"
    "$BIN" render "$PLAYBOOK" -i "$DIR/inventory.yml" --host "$first" --ipv6 >"$OUT/rules.v6"
    export ANSIBLE_HOST_KEY_CHECKING=True ANSIBLE_TIMEOUT=30 ANSIBLE_NOCOLOR=1
    export RULES_V4="$OUT/rules.v4" RULES_V6="$OUT/rules.v6"
    measure ansible "$ANSIBLE_PLAYBOOK" -f "$F" -i "$OUT/ansible.ini" "$ROOT/bench/ansible-baseline.yml"
    ansible_recap=$(grep -E 'ok=[0-9]+' "$OUT/ansible.out" | awk '
        { for (i = 2; i <= NF; i++) { split($i, kv, "="); t[kv[1]] += kv[2] } }
        END { printf "ok=%d changed=%d failed=%d unreachable=%d", t["ok"], t["changed"], t["failed"], t["unreachable"] }')
fi

# --- the table ---------------------------------------------------------
ratio() { awk -v a="$1" -v b="$W_ssh" 'BEGIN{ if (b > 0) printf "%.2f", a/b; else print "-" }'; }
row() { printf '%-46s %9s %7s %13s %9s %9s %10s\n' "$@"; }
echo
row "run" "wall (s)" "/ssh" "conns/sess" "RSS MiB" "CPU ms/h" "exit"
row "plain OpenSSH, xargs -P $F (minimum work)" "$W_ssh" "1.00" "$K_ssh" "-" "-" "$ssh_failed failed"
row "  the same, -o KexAlgorithms=curve25519-sha256" "$W_sshc" "$(ratio "$W_sshc")" "$K_sshc" "-" "-" "$sshc_failed failed"
row "rampart apply (full transaction)" "$W_apply" "$(ratio "$W_apply")" "$K_apply" "$M_apply" "$C_apply" ""
row "rampart apply again (all ok)" "$W_rerun" "$(ratio "$W_rerun")" "$K_rerun" "$M_rerun" "$C_rerun" ""
row "rampart audit" "$W_audit" "$(ratio "$W_audit")" "$K_audit" "$M_audit" "$C_audit" ""
row "rampart apply lockout.yml (predicted)" "$W_lockout" "$(ratio "$W_lockout")" "$K_lockout" "$M_lockout" "$C_lockout" ""
if [ -n "$W_ansible" ]; then
    row "ansible-playbook (same transaction)" "$W_ansible" "$(ratio "$W_ansible")" "$K_ansible" "-" "-" ""
    echo "ansible: $("$ANSIBLE_PLAYBOOK" --version | head -1), $ansible_recap"
    echo "ansible / rampart apply: $(awk -v a="$W_ansible" -v b="$W_apply" 'BEGIN{printf "%.1f", a/b}')x"
else
    row "ansible-playbook" "skipped" "" "" "" "" ""
fi
echo
echo "apply:   $(summary apply)"
echo "rerun:   $(summary rerun)"
echo "audit:   $(summary audit)"
echo "lockout: $(summary lockout)"
echo "targets: apply <= 0.33 x OpenSSH, rerun <= 0.12 x, peak RSS < 100 MiB, CPU < 8 ms/host;"
echo "         connections/sessions per host: apply 2/2, rerun 1/1, audit 1/1"
echo "rampart / OpenSSH with rampart's key exchange: apply $(awk -v a="$W_apply" -v b="$W_sshc" 'BEGIN{printf "%.2f", a/b}'), rerun $(awk -v a="$W_rerun" -v b="$W_sshc" 'BEGIN{printf "%.2f", a/b}')"
[ "$ssh_failed" = 0 ] || { echo "OpenSSH failures:"; grep '^FAILED' "$OUT/ssh.out" | head; }
[ "$sshc_failed" = 0 ] || { echo "OpenSSH (curve25519) failures:"; grep '^FAILED' "$OUT/sshc.out" | head; }
printf 'TSV\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$N" "$F" "$W_ssh" "$W_apply" "$W_rerun" \
    "$W_audit" "$W_lockout" "${W_ansible:--}" "$M_apply" "$C_apply" "$K_apply/$K_rerun/$K_audit" "$W_sshc"
