# verify.sh: over connection B, read back what the kernel holds, and where
# the dead-man switch stands. Changes nothing: the controller decides from
# this whether to commit (disarm and persist) or to restore.
# (docs/design.md, "The transaction")
#
# Parameters: rp_state, rp_token, rp_families (v4 v6), rp_listing (yes:
# also print `iptables -L -n -v --line-numbers`, the evidence).
# Prints `switch` (armed, fired STATE, gone), then per family `saveF`
# (iptables-save, all tables), `rcsaveF` (its status), and `listF`.
# shellcheck shell=sh disable=SC2154,SC2034

sec switch
if [ -e "$rp_state/claim.$rp_token" ]; then
    echo "fired $(cat "$rp_state/switch.state" 2>/dev/null)"
elif rp_switch_alive; then
    echo armed
else
    echo gone
fi
for rp_f in $rp_families; do
    rp_tool "$rp_f"
    sec "save$rp_f"
    rp_xt "$rp_x-save" 2>&1
    rp_st=$?
    sec "rcsave$rp_f"
    echo "$rp_st"
    if [ "$rp_listing" = yes ]; then
        sec "list$rp_f"
        rp_xt "$rp_x" -L -n -v --line-numbers 2>&1
    fi
done
