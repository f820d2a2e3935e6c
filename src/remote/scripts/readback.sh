# readback.sh: after a rollback, over a NEW connection: what the switch
# recorded and what is live, so the report says `rolled_back` only when
# the backup's rules are proven back. Then it tidies the switch's records.
# (docs/design.md, "The dead-man switch")
#
# Parameters: rp_state, rp_token, rp_families (v4 v6).
# Prints `switch` (the switch's record, if any) and per family `saveF`.
# shellcheck shell=sh disable=SC2154,SC2034

sec switch
cat "$rp_state/switch.state" 2>/dev/null
for rp_f in $rp_families; do
    sec "save$rp_f"
    rp_tool "$rp_f"
    rp_xt "$rp_x-save" -t filter 2>&1
done
# A switch that restored is done; one that failed keeps its record for the
# operator (and for the next run's warning).
if ! rp_switch_alive && [ "$(cat "$rp_state/switch.state" 2>/dev/null)" != restore_failed ]; then
    # One rm, the claim its last operand (as rp_end_switch does).
    rp_rm "$rp_state/switch.state" "$rp_state/switch.sh" "$rp_state/claim.$rp_token"
fi
