# commit.sh: end a confirmed transaction: disarm its dead-man switch (when
# rp_token is set: the switch must not have claimed it first), then write
# the persisted files with checked writes. Also the whole of the
# persist-only path (live rules right, files stale), where no switch is
# armed: it takes the same lock and busy check as an apply, so it never
# persists rules another run has not confirmed yet.
# (docs/design.md, "The transaction", "Persistence and boot")
#
# Parameters: rp_state, rp_token (may be empty), rp_families (v4 v6),
# rp_path_v4, rp_path_v6 (where to persist), rp_text_v4, rp_text_v6.
# Prints `disarm` (disarmed, fired STATE, none), then `result` (ok, busy)
# and per family `persistF` (ok, or failed: reason).
# shellcheck shell=sh disable=SC2154,SC2034

sec disarm
if [ -n "$rp_token" ]; then
    if rp_claim "$rp_token"; then
        rp_end_switch "$rp_token"
        echo disarmed
    else
        echo "fired $(cat "$rp_state/switch.state" 2>/dev/null)"
        exit 0
    fi
else
    echo none
fi

sec result
if ! rp_state_dir || ! rp_lock; then
    echo busy
    sec detail
    echo "cannot take the lock on $rp_state: another rampart run holds it"
    exit 0
fi
if rp_switch_alive; then
    echo busy
    sec detail
    echo "a dead-man switch (pid $rp_sp) is armed: another rampart transaction is in flight"
    exit 0
fi
echo ok
for rp_f in $rp_families; do
    if [ "$rp_f" = v6 ]; then
        rp_p=$rp_path_v6
        rp_t=$rp_text_v6
    else
        rp_p=$rp_path_v4
        rp_t=$rp_text_v4
    fi
    sec "persist$rp_f"
    if ! rp_parent_dir "$rp_p"; then
        echo "failed: cannot create $rp_pd"
        continue
    fi
    if rp_err=$(rp_write "$rp_p" "$rp_t" 2>&1); then
        if command -v restorecon >/dev/null 2>&1; then
            restorecon -- "$rp_p" 2>/dev/null
        fi
        echo ok
    else
        echo "failed: $rp_err"
    fi
done
