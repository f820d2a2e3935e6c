# apply.sh: test, back up, arm, apply, in one step over connection A.
# (docs/design.md, "The transaction")
#
# Parameters: rp_state, rp_token, rp_secs, rp_families (v4 v6),
# rp_desired_v4 and rp_desired_v6 (the managed rules, rp_managed form),
# rp_switch (the text of the switch script), rp_preserve, rp_keep.
# Prints `result` (applied, busy, test_failed, backup_failed, arm_failed,
# apply_failed), `detail`, and once applied `armed` (how the switch runs)
# and per family `backupF` (the backup).
# shellcheck shell=sh disable=SC2154,SC2034

rp_result() {
    sec result
    echo "$1"
    sec detail
    printf '%s\n' "$2"
}

rp_desired() {
    if [ "$1" = v6 ]; then rp_d=$rp_desired_v6; else rp_d=$rp_desired_v4; fi
}

if ! rp_state_dir; then
    rp_result test_failed "cannot create $rp_state"
    exit 0
fi
# From the busy check to the armed switch, one transaction at a time.
if ! rp_lock; then
    rp_result busy "cannot take the lock on $rp_state: another rampart run holds it"
    exit 0
fi
if rp_switch_alive; then
    rp_result busy "a dead-man switch (pid $rp_sp) is armed: another rampart transaction is in flight"
    exit 0
fi
# What earlier transactions left: ended switches' claims and records.
rp_rm "$rp_state"/claim.*
rp_rm "$rp_state/switch.pid" "$rp_state/switch.state" "$rp_state/switch.sh"

# Test every family before anything changes, against the live rules read
# once: they are also the backup.
for rp_f in $rp_families; do
    rp_tool "$rp_f"
    rp_desired "$rp_f"
    if ! rp_live=$(rp_xt "$rp_x-save" -t filter 2>/dev/null); then
        rp_result test_failed "$rp_x-save failed"
        exit 0
    fi
    rp_input=$(rp_program "$rp_d" "$rp_live")
    if ! rp_err=$(rp_xt "$rp_x-restore" --noflush --test 2>&1 >/dev/null); then
        rp_result test_failed "$rp_x-restore --test: $rp_err"
        exit 0
    fi
    rp_input=
    if [ "$rp_f" = v6 ]; then rp_live_v6=$rp_live; else rp_live_v4=$rp_live; fi
done

# Back up the live rules; a backup must load before it can be relied on.
for rp_f in $rp_families; do
    rp_tool "$rp_f"
    if [ "$rp_f" = v6 ]; then rp_b=$rp_live_v6; else rp_b=$rp_live_v4; fi
    case $rp_b in
        *'*filter'*) ;;
        *)  # No filter table at all: restoring must still undo ours.
            rp_b="$rp_b
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
COMMIT"
            ;;
    esac
    rp_input=$rp_b
    if ! rp_err=$(rp_xt "$rp_x-restore" --test 2>&1 >/dev/null); then
        rp_result backup_failed "the backup of the $rp_x rules does not load ($rp_err): nothing applied"
        exit 0
    fi
    rp_input=
    if ! rp_err=$(rp_write "$rp_state/backup.$rp_f" "$rp_b" 600 volatile 2>&1); then
        rp_result backup_failed "cannot back up the $rp_x rules: $rp_err: nothing applied"
        exit 0
    fi
    # Printed from here at the end: the file was read back equal to it.
    if [ "$rp_f" = v6 ]; then rp_bk_v6=$rp_b; else rp_bk_v4=$rp_b; fi
done

# Arm the switch, detached from this session.
if ! rp_err=$(rp_write "$rp_state/switch.sh" "$rp_switch" 600 volatile 2>&1); then
    rp_result arm_failed "cannot write the dead-man switch: $rp_err: nothing applied"
    exit 0
fi
rp_how=
if [ -d "$rp_systemd" ] && command -v systemd-run >/dev/null 2>&1; then
    if systemd-run --unit="rampart-switch-$rp_token" --quiet --collect \
        /bin/sh "$rp_state/switch.sh" </dev/null >/dev/null 2>&1 9<&-; then
        rp_how=systemd-run
    fi
fi
if [ -z "$rp_how" ]; then
    # The switch closes its standard output once its pid is on record (or
    # as it ends): reading that pipe to its end waits exactly as long as
    # arming takes. (systemd-run's switch is not our child: polled below.)
    rp_armed=$( (setsid sh "$rp_state/switch.sh" </dev/null 2>/dev/null 9<&- &) )
    rp_how=setsid
fi
rp_i=0
while ! rp_switch_alive && [ "$rp_i" -lt 500 ]; do
    rp_i=$((rp_i + 1))
    sleep 0.01 2>/dev/null || sleep 1
done
if ! rp_switch_alive; then
    rp_result arm_failed "the dead-man switch did not start ($rp_how): nothing applied"
    exit 0
fi

# Apply: one atomic iptables-restore per family, against the rules live
# now (a ban that fail2ban added since the test is kept).
rp_done=
for rp_f in $rp_families; do
    rp_tool "$rp_f"
    rp_desired "$rp_f"
    rp_failed=
    if rp_live=$(rp_xt "$rp_x-save" -t filter 2>/dev/null); then
        rp_input=$(rp_program "$rp_d" "$rp_live")
        # Only the status says whether it failed: a warning is not a failure.
        if ! rp_err=$(rp_xt "$rp_x-restore" --noflush 2>&1 >/dev/null); then
            rp_failed="$rp_x-restore: ${rp_err:-failed}"
        fi
        rp_input=
    else
        rp_failed="$rp_x-save failed"
    fi
    if [ -n "$rp_failed" ]; then
        # Undo what was applied; disarm only once the undo is proven.
        if rp_restore "$rp_families"; then
            if rp_claim "$rp_token"; then rp_end_switch "$rp_token"; fi
            rp_result apply_failed "$rp_failed; previous rules restored"
        else
            rp_result apply_failed "$rp_failed; restoring the previous rules failed too: the dead-man switch stays armed and retries"
        fi
        exit 0
    fi
    rp_done="$rp_done $rp_f"
done
rp_result applied "$rp_done"
sec armed
echo "$rp_how"
# What the switch would restore: the controller checks a rollback against it.
for rp_f in $rp_families; do
    sec "backup$rp_f"
    if [ "$rp_f" = v6 ]; then printf '%s\n' "$rp_bk_v6"; else printf '%s\n' "$rp_bk_v4"; fi
done
