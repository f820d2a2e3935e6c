#!/usr/bin/env bash
# rampart fleet benchmark: the same lab fleet, reset between runs,
# timed in one run for:
#   1. plain OpenSSH in parallel (xargs -P F): one connection that backs up,
#      iptables-restores and lists the seed's rules, one fresh connection that
#      persists them (the minimum correct work);
#   2. rampart apply of playbooks/baseline.yml (the full transaction);
#   3. the same apply again (every host already ok);
#   4. rampart audit of the fleet;
#   5. (optional) ansible-playbook doing the same, when ansible is installed
#      (or ANSIBLE_PLAYBOOK=/path/to/ansible-playbook is set).
# Prints wall times, the ratio rampart/OpenSSH and rampart's peak RSS.
#
# Usage: sudo bench/fleet.sh [N hosts, default 100] [F forks, default 50]
# Needs root, the lab's packages (see README) and a release build (made here).
set -euo pipefail
N=${1:-100}
F=${2:-50}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=${BENCH_DIR:-/srv/rampart-bench}
OUT=$(mktemp -d /tmp/rampart-bench.XXXXXX)
BIN="$ROOT/target/release/rampart"
PLAYBOOK="$ROOT/playbooks/baseline.yml"

[ "$(id -u)" = 0 ] || { echo "bench: run as root (the lab needs it)" >&2; exit 1; }
command -v /usr/bin/time >/dev/null || { apt-get install -y -qq time >/dev/null 2>&1 || true; }
(cd "$ROOT" && cargo build --release --locked -q)

cleanup() { "$BIN" lab down --dir "$DIR" >/dev/null 2>&1 || true; rm -rf "$OUT"; }
trap cleanup EXIT

fresh_fleet() {
  "$BIN" lab down --dir "$DIR" >/dev/null 2>&1 || true
  "$BIN" lab up "$N" --dir "$DIR" >/dev/null
}

addresses() { grep -oE 'address: "?[0-9a-fA-F.:]+' "$DIR/inventory.yml" | sed -E 's/address: "?//'; }

# Wall time of a command in seconds (3 decimals); its output goes to $DIR/last.log.
timed() {
  local t0 t1
  t0=$(date +%s.%N)
  "$@" >"$OUT/last.log" 2>&1 || true
  t1=$(date +%s.%N)
  echo "$t0 $t1" | awk '{printf "%.3f", $2-$1}'
}

# Peak RSS (MiB) of a command, via GNU time when present.
peak_rss() {
  if [ -x /usr/bin/time ]; then
    /usr/bin/time -f '%M' -o "$OUT/rss" "$@" >/dev/null 2>&1 || true
    awk '{printf "%.1f", $1/1024}' "$OUT/rss"
  else
    echo "n/a"
  fi
}

openssh_run() {
  local ssh="ssh -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=$DIR/known_hosts -i $DIR/id_ed25519 -o ConnectTimeout=10 -o ControlMaster=no"
  export SSH_CMD="$ssh" SEED_RULES
  addresses | xargs -P "$F" -I{} sh -c '
    printf "%s" "$SEED_RULES" | $SSH_CMD root@{} "mkdir -p /var/lib/bench && iptables-save > /var/lib/bench/backup.v4 && iptables-restore && iptables -L -n >/dev/null" &&
    $SSH_CMD root@{} "if [ -f /etc/redhat-release ]; then f=/etc/sysconfig/iptables; else mkdir -p /etc/iptables; f=/etc/iptables/rules.v4; fi; iptables-save > \$f.tmp && chmod 600 \$f.tmp && mv \$f.tmp \$f"
  '
}

echo "rampart fleet benchmark: N=$N hosts, F=$F forks, $(nproc) cores, $(uname -r)"
fresh_fleet
SEED_RULES=$("$BIN" render "$PLAYBOOK" -i "$DIR/inventory.yml" --host h001)
export SEED_RULES
t_ssh=$(timed openssh_run)
fresh_fleet
t_apply=$(timed "$BIN" apply "$PLAYBOOK" -i "$DIR/inventory.yml" --forks "$F" --format json)
apply_summary=$(tr -d '\n ' < "$OUT/last.log" | grep -o '"summary":{[^}]*}' || true)
t_rerun=$(timed "$BIN" apply "$PLAYBOOK" -i "$DIR/inventory.yml" --forks "$F" --format json)
rerun_summary=$(tr -d '\n ' < "$OUT/last.log" | grep -o '"summary":{[^}]*}' || true)
t_audit=$(timed "$BIN" audit "$PLAYBOOK" -i "$DIR/inventory.yml" --forks "$F" --format json)
fresh_fleet
rss=$(peak_rss "$BIN" apply "$PLAYBOOK" -i "$DIR/inventory.yml" --forks "$F" --format json)

t_ansible="not installed"
ANSIBLE_PLAYBOOK=${ANSIBLE_PLAYBOOK:-$(command -v ansible-playbook || true)}
if [ -n "$ANSIBLE_PLAYBOOK" ]; then
  fresh_fleet
  { echo "[all]"; addresses | awk '{printf "%s ansible_host=%s\n", $1, $1}'
    echo "[all:vars]"; echo "ansible_user=root"; echo "ansible_ssh_private_key_file=$DIR/id_ed25519"
    echo "ansible_ssh_common_args='-o UserKnownHostsFile=$DIR/known_hosts -o StrictHostKeyChecking=yes'"
    echo "ansible_python_interpreter=auto_silent"; } > "$OUT/ansible.ini"
  t_ansible=$(ANSIBLE_HOST_KEY_CHECKING=True timed "$ANSIBLE_PLAYBOOK" -f "$F" -i "$OUT/ansible.ini" "$ROOT/bench/ansible-baseline.yml")
  grep -q 'failed=[1-9]\|unreachable=[1-9]' "$OUT/last.log" && t_ansible="$t_ansible (with failures)"
fi

ratio=$(awk -v a="$t_apply" -v b="$t_ssh" 'BEGIN{printf "%.2f", a/b}')
echo
printf '%-44s %10s\n' "run" "wall (s)"
printf '%-44s %10s\n' "plain OpenSSH, xargs -P $F (minimum work)" "$t_ssh"
printf '%-44s %10s\n' "rampart apply (full transaction)" "$t_apply"
printf '%-44s %10s\n' "rampart apply again (all ok)" "$t_rerun"
printf '%-44s %10s\n' "rampart audit" "$t_audit"
printf '%-44s %10s\n' "ansible-playbook (optional)" "$t_ansible"
echo
echo "ratio rampart/OpenSSH: $ratio   (target <= 1.00)"
echo "rerun speedup vs apply: $(awk -v a="$t_apply" -v b="$t_rerun" 'BEGIN{printf "%.2f", a/b}')x   audit: $(awk -v a="$t_apply" -v b="$t_audit" 'BEGIN{printf "%.2f", a/b}')x   (target >= 2x)"
echo "rampart peak RSS: ${rss} MiB   (target < 100)"
echo "apply summary: $apply_summary"
echo "rerun summary: $rerun_summary"
