# switch.sh: the dead-man switch of one transaction. The apply step writes
# lib.sh and this file, with their parameters, to $rp_state/switch.sh and
# starts it detached from the SSH session (systemd-run where systemd is
# PID 1, so logind cannot kill it with the session; setsid elsewhere). It
# sleeps, then restores the backups unless a confirmation claimed the
# transaction first; it retries its restore, bounded, and records the end
# in switch.state: `restored` or `restore_failed`.
# (docs/design.md, "The dead-man switch")
#
# Parameters: rp_state, rp_token, rp_secs (seconds to wait), rp_families
# (v4 v6), rp_attempts (restores tried at most), and lib.sh's.
# shellcheck shell=sh disable=SC2154,SC2034

if ! rp_me=$(rp_proc_id "$$"); then
    exit 1
fi
# In place: nothing reads it before the apply step that started this
# switch has (that step holds the lock the other runs' checks wait for).
printf '%s\n' "$rp_me" >"$rp_state/switch.pid" || exit 1
# Armed: the end of this output is what the apply step waits for.
exec >/dev/null

sleep "$rp_secs"

# A confirmation that claimed first owns the transaction: do nothing.
rp_claim "$rp_token" || exit 0

echo firing >"$rp_state/switch.state"
rp_n=0
while :; do
    if rp_restore "$rp_families"; then
        echo restored >"$rp_state/switch.state"
        break
    fi
    rp_n=$((rp_n + 1))
    if [ "$rp_n" -ge "$rp_attempts" ]; then
        echo restore_failed >"$rp_state/switch.state"
        break
    fi
    sleep 2
done
rm -f "$rp_state/switch.pid" "$rp_state/switch.sh"
