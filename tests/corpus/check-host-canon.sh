#!/bin/sh
# Prove the canon step's rampart_canon (src/remote/scripts/canon.sh) on real iptables: for each ROOTFS (see
# regen-printed.sh) and backend, load each corpus file's rules through
# rampart_canon inside a network namespace standing for the host, and check
# that (1) it prints exactly what tests/corpus/printed/ holds (made with
# `ip netns`), (2) it leaves nothing: no network namespace, no process, no
# file in the root file system, the "host" namespace's own tables as they
# were, (3) it waits for, rather than fails on or takes, the host's xtables
# lock. Needs root; iptables runs only in namespaces this script makes.
#
#   sudo tests/corpus/check-host-canon.sh ROOTFS...
set -eu
here=$(cd "$(dirname "$0")" && pwd)
ns="rampart-hc-$$"
# shellcheck disable=SC2317
cleanup() { ip netns del "$ns" 2>/dev/null || true; }
trap cleanup EXIT INT TERM
fail=0
# Is a network namespace (by inode) still held by any process?
netns_alive() { for p in /proc/[0-9]*/ns/net; do [ "$(stat -L -c %i "$p" 2>/dev/null)" = "$1" ] && return 0; done; return 1; }

for root in "$@"; do
    v=$(chroot "$root" iptables-legacy --version | sed -n 's/^iptables v\([0-9.]*\).*/\1/p')
    # The function the engine's canon step defines, as it is in the source.
    sed -n '/^rampart_canon() {$/,/^}$/p' "$here/../../src/remote/scripts/canon.sh" >"$root/tmp/host-canon.sh"
    for backend in legacy nft; do
        ip netns add "$ns"
        # The "host": some rules of its own in its own namespace.
        printf '*filter\n:INPUT DROP [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A INPUT -i lo -j ACCEPT\nCOMMIT\n' \
            | ip netns exec "$ns" chroot "$root" "iptables-$backend-restore"
        before=$(ip netns exec "$ns" chroot "$root" "iptables-$backend-save" -t filter | grep -v '^#')
        touch "$root/tmp/.hc-stamp"
        for f in "$here"/*.rules; do
            stem=$(basename "$f" .rules)
            case "$stem" in *.v6) stem=${stem%.v6} ;; esac
            fams="v4 v6"
            for fam in $fams; do
                case "$fam" in v4) cmd=iptables ;; v6) cmd=ip6tables ;; esac
                gold="$here/printed/$v-$backend/$stem.$fam.save"
                refused="$here/printed/$v-$backend/$stem.$fam.refused"
                rules=$(grep '^-A ' "$f" | if [ -f "$refused" ]; then grep -vxF -f "$refused"; else cat; fi)
                {
                    printf '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n'
                    printf '%s\n' "$rules" | awk '{print ":" $2 " - [0:0]"}' | sort -u
                    printf '%s\nCOMMIT\n' "$rules"
                } > "$root/tmp/.hc-probe"
                got=$(ip netns exec "$ns" chroot "$root" sh -c ". /tmp/host-canon.sh; rampart_canon $cmd-$backend \"-w 5\" < /tmp/.hc-probe" | grep -v '^#')
                want=$(printf 'rampart-canon-namespace\n'; cat "$gold")
                if [ "$got" != "$want" ]; then
                    echo "FAIL $v-$backend $stem.$fam: differs from $gold"; fail=1
                fi
            done
        done
        after=$(ip netns exec "$ns" chroot "$root" "iptables-$backend-save" -t filter | grep -v '^#')
        [ "$before" = "$after" ] || { echo "FAIL $v-$backend: the host namespace's tables changed"; fail=1; }
        # The throwaway namespace is gone with its shell: run the probe with
        # restore/save wrappers that say which namespace they ran in.
        printf '#!/bin/sh\nstat -L -c %%i /proc/self/ns/net >&2\nexec %s "$@"\n' "iptables-$backend-restore" > "$root/tmp/p-restore"
        printf '#!/bin/sh\nexec %s "$@"\n' "iptables-$backend-save" > "$root/tmp/p-save"
        chmod +x "$root/tmp/p-restore" "$root/tmp/p-save"
        inode=$(ip netns exec "$ns" chroot "$root" sh -c '. /tmp/host-canon.sh; rampart_canon /tmp/p < /tmp/.hc-probe 2>&1 >/dev/null' | tail -1)
        host_inode=$(ip netns exec "$ns" stat -L -c %i /proc/self/ns/net)
        if [ "$inode" = "$host_inode" ] || netns_alive "$inode"; then
            echo "FAIL $v-$backend: the probe ran in the host's namespace or its namespace $inode outlived it"; fail=1
        fi
        if pgrep -f rampart-canon >/dev/null; then echo "FAIL $v-$backend: a probe process is left"; fail=1; fi
        new=$(find "$root" -xdev -newer "$root/tmp/.hc-stamp" ! -path "$root/tmp" ! -path "$root/tmp/*" ! -path "$root/proc/*" ! -path "$root/sys/*" ! -path "$root/dev/*" | head -5)
        [ -z "$new" ] || { echo "FAIL $v-$backend: files written: $new"; fail=1; }
        left=$(ip netns pids "$ns" | wc -l)
        [ "$left" = 0 ] || { echo "FAIL $v-$backend: $left processes left in the namespace"; fail=1; }
        # The host's xtables lock held (as by an apply running beside it):
        # the probe neither fails nor waits, since it never takes that lock.
        # shellcheck disable=SC2016
        out=$(ip netns exec "$ns" chroot "$root" sh -c 'exec 9>/run/xtables.lock; flock 9
            t0=$(date +%s%N); . /tmp/host-canon.sh
            n=$(printf "*filter\n-A OUTPUT -m owner --uid-owner root\nCOMMIT\n" | rampart_canon iptables-'"$backend"' | grep -c "uid-owner 0")
            echo "$n $(( ($(date +%s%N) - t0) / 1000000 ))"' || true)
        case "$out" in
            "1 "*) echo "$v-$backend: host lock held: probe printed --uid-owner 0 in ${out#1 } ms" ;;
            *) echo "FAIL $v-$backend: with the host lock held the probe printed: $out"; fail=1 ;;
        esac
        ip netns del "$ns"
        echo "$v-$backend: checked"
    done
    rm -f "$root/tmp/host-canon.sh" "$root/tmp/.hc-probe" "$root/tmp/.hc-stamp" "$root/tmp/p-restore" "$root/tmp/p-save"
done
exit "$fail"
