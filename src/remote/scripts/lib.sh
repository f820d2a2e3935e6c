# lib.sh: the functions every step of a connection, and the dead-man switch,
# share. Sent once when a connection's shell starts (and copied into the
# switch's own script). POSIX sh: runs under dash, bash, busybox ash.
# (docs/design.md, "The remote protocol")
#
# Parameters, set before this text by the substitution step:
#   rp_nonce      per-connection random marker: host text cannot forge a section
#   rp_path       PATH for everything below
#   rp_lock_wait  seconds an iptables tool may wait for the xtables lock
#   rp_preserve   chain patterns rampart leaves alone (shell patterns, one per line)
#   rp_keep       chain names rampart leaves alone (one per line)
#   rp_systemd    the directory that exists when systemd is PID 1
#                 (/run/systemd/system; the script tests point it elsewhere)
# and, set by a step (or the switch) once the facts are known:
#   rp_backend    the host's iptables backend (nf_tables, legacy, unknown)
# shellcheck shell=sh disable=SC2154

PATH=$rp_path
export PATH
LC_ALL=C
export LC_ALL
umask 077

# sec NAME: start a section of the output the controller reads.
sec() {
    printf '\n@@rampart:%s:%s\n' "$rp_nonce" "$1"
}

# rp_has_wait TOOL: whether TOOL takes `-w SECONDS` (wait for the xtables
# lock). The nf_tables backend has no xtables lock and accepts -w: a step
# of a host whose facts showed it sets rp_backend=nf_tables and probes
# nothing. Otherwise `TOOL -V` names the backend, and the legacy tools
# that take -w say so in their help. Cached per tool for the life of the
# shell (a step's subshell, or the switch).
rp_wait_yes=' '
rp_wait_no=' '
rp_has_wait() {
    case $1 in *-save) return 1 ;; esac
    [ "${rp_backend-}" = nf_tables ] && return 0
    case $rp_wait_yes in *" $1 "*) return 0 ;; esac
    case $rp_wait_no in *" $1 "*) return 1 ;; esac
    case $("$1" -V 2>&1 </dev/null) in
        *nf_tables*) rp_wait_yes="$rp_wait_yes$1 "; return 0 ;;
    esac
    case $("$1" --help 2>&1 </dev/null) in
        *--wait* | *nf_tables*) rp_wait_yes="$rp_wait_yes$1 "; return 0 ;;
    esac
    rp_wait_no="$rp_wait_no$1 "
    return 1
}

# rp_xt TOOL ARG...: run an iptables tool so that a lock held by another
# program (fail2ban, Docker, kube-proxy) delays it instead of failing it:
# `-w` where the tool takes it, and in any case retried once a second while
# it reports the xtables lock busy, for at most rp_lock_wait seconds.
# With rp_input set, its text is the tool's standard input on every attempt
# (a pipe, not a file: a restore must work on a full disk).
# Its output passes through; its errors are printed once, at the end.
rp_xt() {
    rp_tool=$1
    shift
    rp_try=0
    if rp_has_wait "$rp_tool"; then
        set -- -w "$rp_lock_wait" "$@"
    fi
    while :; do
        # Fed through a pipe only when there is input (one process less).
        if [ -n "$rp_input" ]; then
            rp_err=$( { printf '%s\n' "$rp_input" | "$rp_tool" "$@" >&3; } 2>&1)
        else
            rp_err=$("$rp_tool" "$@" 2>&1 >&3 </dev/null)
        fi
        rp_st=$?
        case $rp_err in
            *'xtables lock'* | *'holding the lock'*)
                if [ "$rp_st" -ne 0 ] && [ "$rp_try" -lt "$rp_lock_wait" ]; then
                    rp_try=$((rp_try + 1))
                    sleep 1
                    continue
                fi
                ;;
        esac
        [ -n "$rp_err" ] && printf '%s\n' "$rp_err" >&2
        return "$rp_st"
    done
} 3>&1

# rp_kept NAME: whether chain NAME is left alone (preserved).
rp_kept() {
    rp_old_ifs=$IFS
    IFS='
'
    for rp_k in $rp_keep; do
        if [ "$rp_k" = "$1" ]; then IFS=$rp_old_ifs; return 0; fi
    done
    set -f
    for rp_p in $rp_preserve; do
        # shellcheck disable=SC2254 # the pattern is meant to match
        case $1 in $rp_p) set +f; IFS=$rp_old_ifs; return 0 ;; esac
    done
    set +f
    IFS=$rp_old_ifs
    return 1
}

# rp_builtin NAME: whether NAME is a built-in chain of the filter table.
rp_builtin() {
    case $1 in INPUT | FORWARD | OUTPUT) return 0 ;; esac
    return 1
}

# rp_target LINE: sets rp_t to the chain a `-A ... -j|-g NAME` rule ends
# with, or to "" when the rule has another target (one with options, or
# none). A target with options never names a chain, so only the last word
# counts, and a quoted comment cannot fake it.
rp_target() {
    rp_t=
    case $1 in *' -j '* | *' -g '*) ;; *) return 0 ;; esac
    rp_t=${1##* -[jg] }
    case $rp_t in '' | *[!A-Za-z0-9_.+-]*) rp_t= ;; esac
}

# rp_managed TEXT: print the part of the filter table of TEXT (an
# iptables-save text) that rampart manages: chain declarations and rules,
# without the preserved chains, without the rules of built-in chains that
# jump to them, without comments, counters zeroed. Two such texts are equal
# exactly when the rules rampart owns are equal.
rp_managed() {
    printf '*filter\n'
    rp_walk_filter "$1" rp_managed_line
}

# rp_managed_line LINE: one line of a filter table, for rp_managed.
rp_managed_line() {
    case $1 in
        '#'*) return 0 ;;
        :*)
            rp_n=${1#:}
            rp_n=${rp_n%% *}
            rp_kept "$rp_n" && return 0
            rp_rest=${1#:"$rp_n" }
            printf ':%s %s [0:0]\n' "$rp_n" "${rp_rest%% *}"
            return 0
            ;;
        '-A '*)
            rp_n=${1#-A }
            rp_n=${rp_n%% *}
            rp_kept "$rp_n" && return 0
            if rp_builtin "$rp_n"; then
                rp_target "$1"
                [ -n "$rp_t" ] && rp_kept "$rp_t" && return 0
            fi
            ;;
    esac
    printf '%s\n' "$1"
}

# rp_program MANAGED LIVE: print the iptables-restore --noflush input that
# makes the live filter table (LIVE: iptables-save text) hold the managed
# rules (MANAGED: rp_managed text) while the preserved chains stay exactly
# as they are now, rules and counters included: they are never named, so
# never flushed. Built-in chains are flushed and get the live jumps into
# preserved chains back first, in their live order, then the managed rules;
# user chains rampart manages are declared (which creates or flushes them);
# every other unpreserved user chain is flushed, then deleted. Texts, not
# files: a restore must work on a full disk. (docs/design.md, "The transaction")
rp_program() {
    printf '*filter\n'
    rp_lines "$1" ':'
    printf -- '-F INPUT\n-F FORWARD\n-F OUTPUT\n'
    rp_stale "$1" "$2"
    rp_each "$rp_stale_list" '-F %s\n'
    rp_each "$rp_stale_list" '-X %s\n'
    rp_live_jumps "$2"
    rp_lines "$1" '-A '
    printf 'COMMIT\n'
}

# rp_walk TEXT FUNC [ARG]: run `FUNC LINE ARG` for each line of TEXT, in
# a `for` over TEXT split at newlines (IFS a newline, globbing off while
# the list is made), not a `while read` at the end of a pipe: no process
# at all, and FUNC's variables stay set. FUNC runs with the caller's IFS.
# Empty lines are skipped (no iptables-save text has one). Not reentrant:
# FUNC must not call rp_walk.
rp_walk() {
    rp_wk_ifs=$IFS
    IFS='
'
    set -f
    for rp_wl in $1; do
        IFS=$rp_wk_ifs
        "$2" "$rp_wl" "${3-}"
    done
    set +f
    IFS=$rp_wk_ifs
}

# rp_walk_filter TEXT FUNC [ARG]: rp_walk over the lines of the filter
# table of TEXT (an iptables-save text) only.
rp_walk_filter() {
    rp_in_filter=
    rp_wf_func=$2
    rp_walk "$1" rp_filter_step "${3-}"
}

rp_filter_step() {
    case $1 in
        '*filter') rp_in_filter=1 ;;
        '*'*) rp_in_filter= ;;
        *) [ -z "$rp_in_filter" ] || "$rp_wf_func" "$1" "$2" ;;
    esac
}

# rp_lines TEXT PREFIX: print the lines of TEXT that start with PREFIX.
rp_lines() {
    rp_walk "$1" rp_if_prefix "$2"
}

rp_if_prefix() {
    case $1 in "$2"*) printf '%s\n' "$1" ;; esac
}

# rp_each LIST FORMAT: printf FORMAT once per line of LIST.
rp_each() {
    rp_walk "$1" rp_printf_line "$2"
}

rp_printf_line() {
    # shellcheck disable=SC2059 # the format is ours
    printf -- "$2" "$1"
}

# rp_stale MANAGED LIVE: set rp_stale_list to the user chains of LIVE's
# filter table that are neither preserved nor declared in MANAGED, one per
# line.
rp_stale() {
    rp_stale_list=
    rp_walk_filter "$2" rp_stale_line "$1"
}

# rp_stale_line LINE MANAGED: one line of LIVE's filter table, for rp_stale.
rp_stale_line() {
    case $1 in :*) ;; *) return 0 ;; esac
    rp_n=${1#:}
    rp_n=${rp_n%% *}
    rp_builtin "$rp_n" && return 0
    rp_kept "$rp_n" && return 0
    case "
$2" in *"
:$rp_n "*) return 0 ;; esac
    rp_stale_list="$rp_stale_list$rp_n
"
}

# rp_live_jumps LIVE: print the rules of LIVE's built-in filter chains
# that jump to a preserved chain, in their order.
rp_live_jumps() {
    rp_walk_filter "$1" rp_jump_line
}

# rp_jump_line LINE: one line of LIVE's filter table, for rp_live_jumps.
rp_jump_line() {
    case $1 in '-A '*) ;; *) return 0 ;; esac
    rp_n=${1#-A }
    rp_n=${rp_n%% *}
    rp_builtin "$rp_n" || return 0
    rp_target "$1"
    if [ -n "$rp_t" ] && rp_kept "$rp_t"; then
        printf '%s\n' "$1"
    fi
}

# rp_reads_back FILE TEXT: whether FILE holds exactly TEXT and a newline.
rp_reads_back() {
    if command -v cmp >/dev/null 2>&1; then
        printf '%s\n' "$2" | cmp -s - "$1"
    else
        [ "$(cat -- "$1")" = "$(printf '%s\n' "$2")" ]
    fi
}

# rp_write PATH TEXT [MODE [volatile]]: write TEXT (plus a final newline)
# to PATH so that PATH is either its old self or the whole new text, never
# a part: a temp file beside it, every status checked, flushed to disk,
# read back and compared, then renamed over PATH. MODE defaults to 600 (the
# umask of lib.sh makes a new file so: no chmod then). Fails (status 1, a
# reason on stderr) when anything does: a full disk leaves PATH as it was.
#
# `volatile`: a file that only this transaction uses, and only once its
# writer has read it back (a backup before the switch is armed, the
# switch's script before it starts; a reboot ends the transaction). It is
# written in place, not fsynced, not renamed: a failure leaves no file
# anything relies on (the step fails before arming). A link there is
# removed, never written through.
rp_write() {
    if [ "${4-}" = volatile ]; then
        rp_tmp=$1
        if [ -L "$rp_tmp" ] || { [ -e "$rp_tmp" ] && [ ! -f "$rp_tmp" ]; }; then
            rm -f -- "$rp_tmp"
        fi
    else
        rp_tmp="$1.rampart-tmp"
        if [ -e "$rp_tmp" ] || [ -L "$rp_tmp" ]; then
            rm -f -- "$rp_tmp"
        fi
    fi
    if ! printf '%s\n' "$2" >"$rp_tmp" ||
        { [ "${3:-600}" != 600 ] && ! chmod "$3" -- "$rp_tmp"; }; then
        rm -f -- "$rp_tmp"
        echo "cannot write $rp_tmp" >&2
        return 1
    fi
    if [ "${4-}" != volatile ] && ! sync -- "$rp_tmp" 2>/dev/null; then
        # Tools without `sync FILE` (older coreutils) still flush everything.
        sync
    fi
    if ! rp_reads_back "$rp_tmp" "$2"; then
        rm -f -- "$rp_tmp"
        echo "$rp_tmp does not read back as written (is the disk full?)" >&2
        return 1
    fi
    if [ "$rp_tmp" != "$1" ] && ! mv -f -- "$rp_tmp" "$1"; then
        rm -f -- "$rp_tmp"
        echo "cannot rename $rp_tmp to $1" >&2
        return 1
    fi
    return 0
}

# rp_state_dir: make the state dir when it is missing, private (the umask
# of lib.sh makes it 700). One that exists is left as it is, without a
# process: rampart made it so, and whatever its mode, every file in it is
# made 600.
rp_state_dir() {
    [ -d "$rp_state" ] || mkdir -p -- "$rp_state"
}

# rp_parent_dir PATH: make the directory PATH goes in when it is missing
# (umask 022: these are system dirs such as /etc/iptables); sets rp_pd to
# it. What dirname prints, without its process (the controller's paths are
# absolute, without a trailing slash).
rp_parent_dir() {
    case $1 in
        */*) rp_pd=${1%/*} ;;
        *) rp_pd=. ;;
    esac
    [ -n "$rp_pd" ] || rp_pd=/
    [ -d "$rp_pd" ] || (umask 022 && mkdir -p -- "$rp_pd")
}

# rp_rm PATH...: rm -rf the PATHs, when any of them exists: most of the
# time none does, and then no process runs.
rp_rm() {
    for rp_rp in "$@"; do
        if [ -e "$rp_rp" ] || [ -L "$rp_rp" ]; then
            rm -rf -- "$@"
            return
        fi
    done
}

# rp_cat FILE: print a small text file (os-release, a state record) with
# the shell's own read: no process. Nothing when it is not a readable
# regular file.
rp_cat() {
    [ -f "$1" ] && [ -r "$1" ] || return 0
    while IFS= read -r rp_cl || [ -n "$rp_cl" ]; do
        printf '%s\n' "$rp_cl"
    done <"$1"
}

# rp_tool FAMILY: set rp_x to the iptables tool of a family (v4, v6)
# (a variable, not output: no subshell).
rp_tool() {
    if [ "$1" = v6 ]; then rp_x=ip6tables; else rp_x=iptables; fi
}

# rp_proc_id PID: "PID STARTTIME" of a running process (the start time
# tells a process from a later one that got the same pid), or nothing. A
# zombie (ended, not yet reaped by its parent) is not running.
rp_proc_id() {
    # One line (a newline in a process name cuts it short: then it is not
    # our switch, whose name is sh, and the field count says so).
    IFS= read -r rp_stat 2>/dev/null <"/proc/$1/stat" || return 1
    rp_pid=$1
    # The fields after "PID (COMM) ": the state first, the 20th of them is
    # the start time.
    rp_stat=${rp_stat##*) }
    set -f
    # shellcheck disable=SC2086 # split the fields
    set -- $rp_stat
    set +f
    [ $# -ge 20 ] || return 1
    [ "$1" != Z ] || return 1
    shift 19
    printf '%s %s\n' "$rp_pid" "$1"
}

# rp_switch_alive: whether the dead-man switch recorded in switch.pid is
# still running (then rp_sp is its pid, also its process group).
rp_switch_alive() {
    rp_sp=
    [ -s "$rp_state/switch.pid" ] || return 1
    IFS= read -r rp_rec 2>/dev/null <"$rp_state/switch.pid" || return 1
    rp_sp=${rp_rec%% *}
    case $rp_sp in '' | *[!0-9]*) return 1 ;; esac
    [ "$(rp_proc_id "$rp_sp")" = "$rp_rec" ]
}

# rp_lock: hold the host's rampart lock for the rest of this step (steps
# run in subshells, so it ends with the step). flock on the state dir where
# flock exists; elsewhere (busybox has no flock) an atomic mkdir of
# $rp_state/lock that names its holder, so that a holder that died does
# not block the host forever. Waits at most 10 s.
rp_lock() {
    if command -v flock >/dev/null 2>&1; then
        exec 9<"$rp_state" || return 1
        flock -w 10 9
        return
    fi
    rp_i=0
    while ! mkdir "$rp_state/lock" 2>/dev/null; do
        rp_holder=$(cat "$rp_state/lock/pid" 2>/dev/null)
        if [ -n "$rp_holder" ] && ! kill -0 "$rp_holder" 2>/dev/null; then
            rm -rf "$rp_state/lock"
            continue
        fi
        rp_i=$((rp_i + 1))
        [ "$rp_i" -ge 100 ] && return 1
        sleep 0.1 2>/dev/null || sleep 1
    done
    # The shell of this connection: alive as long as the step can run. The
    # lock goes when the step (a subshell) ends, however it ends.
    echo "$$" >"$rp_state/lock/pid"
    rp_dir_lock=1
    trap 'rp_unlock' EXIT
}

# rp_unlock: release rp_lock early (before a long wait).
rp_unlock() {
    if [ -n "${rp_dir_lock-}" ]; then
        rm -rf "$rp_state/lock"
        rp_dir_lock=
    fi
    exec 9<&-
}

# rp_restore FAMILIES: put the backups of FAMILIES (v4 v6) back and prove
# it: the managed part of what -save prints afterwards equals the
# backup's. Preserved chains stay as they are now (a ban fail2ban added
# since the backup is not lost). Status 0 only when every family is proven.
rp_restore() {
    rp_ok=0
    for rp_f in $1; do
        rp_tool "$rp_f"
        if ! rp_rb=$(cat -- "$rp_state/backup.$rp_f"); then
            rp_ok=1
            continue
        fi
        rp_want=$(rp_managed "$rp_rb")
        if ! rp_live=$(rp_xt "$rp_x-save" -t filter); then
            rp_ok=1
            continue
        fi
        rp_input=$(rp_program "$rp_want" "$rp_live")
        if ! rp_xt "$rp_x-restore" --noflush >/dev/null; then
            rp_input=
            rp_ok=1
            continue
        fi
        rp_input=
        rp_now=$(rp_xt "$rp_x-save" -t filter)
        rp_now=$(rp_managed "$rp_now")
        [ "$rp_now" = "$rp_want" ] || rp_ok=1
    done
    return "$rp_ok"
}

# rp_claim TOKEN: decide, once and for all, who ends transaction TOKEN's
# dead-man switch: the first to create the claim wins. The claim is a file
# made with noclobber, which every shell here opens O_CREAT|O_EXCL: atomic,
# and no process (a claim left as a directory by an older rampart blocks
# it just as well). The switch claims before it restores; a confirmation
# claims before it disarms. So a switch never restores rules a
# confirmation just accepted, and a confirmation never disarms a switch
# that is restoring.
rp_claim() {
    set -C
    # `true`, not `:`: a redirection that fails on a special built-in ends
    # a POSIX shell, and losing the claim is an answer here, not an error.
    true 2>/dev/null >"$rp_state/claim.$1"
    rp_cs=$?
    set +C
    return "$rp_cs"
}

# rp_end_switch TOKEN: once the claim on TOKEN is ours, end the switch's
# process group (it sleeps) and tidy its files. The claim goes last, and
# only once the switch is surely gone: a switch still alive without the
# claim would restore when it wakes.
rp_end_switch() {
    if rp_switch_alive; then
        # `kill -TERM -PGID`: the one spelling dash, bash and busybox all take.
        kill -TERM "-$rp_sp" 2>/dev/null || kill -TERM "$rp_sp" 2>/dev/null
        rp_i=0
        while rp_switch_alive && [ "$rp_i" -lt 200 ]; do
            rp_i=$((rp_i + 1))
            sleep 0.01 2>/dev/null || sleep 1
        done
        rp_switch_alive && return 1
    fi
    # One rm, the claim its last operand.
    rp_rm "$rp_state/switch.pid" "$rp_state/switch.sh" "$rp_state/claim.$1"
}
