# boot.sh: install and enable rampart's own boot-time loader, where nothing
# on the host loads the persisted rules at boot (play key `boot: ensure`).
# Run only after the rules were confirmed and persisted, so a rollback
# never leaves a loader behind. Every file with the checked write of the
# rules; the enabling links the way the host's init looks for them.
# (docs/design.md, "Persistence and boot")
#
# Parameters: rp_loader_path and rp_loader_text (the script that restores
# the persisted files), rp_service_path, rp_service_text and
# rp_service_mode (the systemd unit, or the init script), rp_links (one
# "LINK TARGET" per line: the enabling symlinks), rp_reload (yes: tell a
# running systemd).
# Prints `boot`: ok, or failed: reason.
# shellcheck shell=sh disable=SC2154,SC2034

sec boot
for rp_p in "$rp_loader_path" "$rp_service_path"; do
    if ! rp_parent_dir "$rp_p"; then
        echo "failed: cannot create $rp_pd"
        exit 0
    fi
done
if ! rp_err=$(rp_write "$rp_loader_path" "$rp_loader_text" 755 2>&1); then
    echo "failed: $rp_err"
    exit 0
fi
if ! rp_err=$(rp_write "$rp_service_path" "$rp_service_text" "$rp_service_mode" 2>&1); then
    echo "failed: $rp_err"
    exit 0
fi
rp_old_ifs=$IFS
IFS='
'
set -f
for rp_l in $rp_links; do
    IFS=$rp_old_ifs
    rp_link=${rp_l%% *}
    rp_target=${rp_l#* }
    if ! rp_parent_dir "$rp_link" || ! ln -sfn -- "$rp_target" "$rp_link"; then
        echo "failed: cannot link $rp_link"
        exit 0
    fi
done
set +f
IFS=$rp_old_ifs
if [ "$rp_reload" = yes ] && [ -d "$rp_systemd" ] && command -v systemctl >/dev/null 2>&1; then
    systemctl daemon-reload >/dev/null 2>&1
fi
echo ok
