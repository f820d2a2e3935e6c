# restore.sh: roll back over a connection that still answers: put the
# backups back, prove it, and only then disarm the dead-man switch. A
# restore that cannot be proven leaves the switch armed: it retries by
# itself when it fires. (docs/design.md, "The dead-man switch")
#
# Parameters: rp_state, rp_token, rp_families (v4 v6), rp_preserve, rp_keep.
# Prints `result` (restored, fired STATE, restore_failed), `detail` (why
# a restore failed) and per family
# `saveF`: what is live afterwards.
# shellcheck shell=sh disable=SC2154,SC2034

if rp_err=$(rp_restore "$rp_families" 2>&1); then
    sec result
    if rp_claim "$rp_token"; then
        rp_end_switch "$rp_token"
        echo restored
    else
        echo "fired $(cat "$rp_state/switch.state" 2>/dev/null)"
    fi
else
    sec result
    echo restore_failed
    sec detail
    printf '%s\n' "$rp_err"
fi
for rp_f in $rp_families; do
    sec "save$rp_f"
    rp_tool "$rp_f"
    rp_xt "$rp_x-save" -t filter 2>&1
done
