#!/bin/sh
# Regenerate tests/corpus/printed/: what each real iptables version prints
# back (iptables-save -t filter) for every corpus rule, per backend.
#
#   sudo tests/corpus/regen-printed.sh ROOTFS...
#
# Each ROOTFS is a Debian root file system with iptables installed, e.g.
# made once with
#   debootstrap --foreign --variant=minbase --include=iptables bookworm /srv/x/bookworm http://deb.debian.org/debian
#   unshare -n -p -f -m --mount-proc chroot /srv/x/bookworm /debootstrap/debootstrap --second-stage
# (the second stage runs the package scripts in a network namespace of its own).
# bullseye has iptables 1.8.7, bookworm 1.8.9, trixie 1.8.11.
#
# Needs root. iptables only ever runs inside network namespaces this script
# creates (ip netns add) and deletes, never in the machine's own. Not run
# in CI: the goldens it writes are committed and checked by a unit test
# (src/firewall/corpus.rs).
#
# For each version and backend (legacy, nft) and each corpus file, every
# rule is first loaded alone (a table holding only it, really loaded: the
# kernel refuses some rules that `iptables-restore --test` lets through,
# such as IPv6 addrtype BROADCAST); those the backend and kernel accept are
# loaded together into a fresh namespace and iptables-save prints them. A v4 file's rules go to iptables,
# and those ip6tables also accepts to ip6tables too (rampart sends a rule
# with no address family to both); a *.v6.rules file goes to ip6tables only.
# Rules a backend refuses are listed in <file>.<fam>.refused.
set -eu
[ -z "${TRACE:-}" ] || set -x

here=$(cd "$(dirname "$0")" && pwd)
out="$here/printed"
[ "$#" -gt 0 ] || { echo "usage: $0 ROOTFS..." >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "$0: needs root (network namespaces)" >&2; exit 2; }

ns="rampart-canon-$$"
# shellcheck disable=SC2317
cleanup() { ip netns del "$ns" 2>/dev/null || true; }
trap cleanup EXIT INT TERM

# The restore input for the rules on stdin: every chain they append to or
# jump to (other than built-ins and targets) declared first.
table() {
    rules=$(cat)
    printf '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n'
    printf '%s\n' "$rules" | awk '{print $2}' | sort -u | while read -r c; do
        case "$c" in INPUT|FORWARD|OUTPUT|'') ;; *) printf ':%s - [0:0]\n' "$c" ;; esac
    done
    [ -z "$rules" ] || printf '%s\n' "$rules"
    printf 'COMMIT\n'
}

for root in "$@"; do
    v=$(chroot "$root" iptables-legacy --version | sed -n 's/^iptables v\([0-9.]*\).*/\1/p')
    [ -n "$v" ] || { echo "$root: no iptables-legacy" >&2; exit 1; }
    for backend in legacy nft; do
        dir="$out/$v-$backend"
        rm -rf "$dir"
        mkdir -p "$dir"
        for f in "$here"/*.rules; do
            stem=$(basename "$f" .rules)
            case "$stem" in *.v6) stem=${stem%.v6} ;; esac
            fams="v4 v6"
            for fam in $fams; do
                case "$fam" in v4) cmd=iptables ;; v6) cmd=ip6tables ;; esac
                rules=$(grep '^-A ' "$f")
                # Chains the file declares by appending to them, so that a jump
                # into one of them is accepted when tried alone.
                decl=$(printf '%s\n' "$rules" | awk '{print $2}' | sort -u | sed 's/^/-A /; s/$/ -j RETURN/')
                ip netns add "$ns"
                acc="" ; ref=""
                while IFS= read -r r; do
                    if printf '%s\n%s\n' "$decl" "$r" | table \
                        | ip netns exec "$ns" chroot "$root" "$cmd-$backend-restore" >/dev/null 2>&1; then
                        acc="$acc$r
"
                    else
                        ref="$ref$r
"
                    fi
                done <<RULES
$rules
RULES
                printf '%s' "$acc" | table | ip netns exec "$ns" chroot "$root" "$cmd-$backend-restore"
                ip netns exec "$ns" chroot "$root" "$cmd-$backend-save" -t filter | grep -v '^#' > "$dir/$stem.$fam.save"
                ip netns del "$ns"
                if [ -n "$ref" ]; then printf '%s' "$ref" > "$dir/$stem.$fam.refused"; fi
            done
        done
        echo "$dir: $(cat "$dir"/*.save | grep -c '^-A') rules printed, $(cat "$dir"/*.refused 2>/dev/null | grep -c '^-A' || true) refused"
    done
done
