#!/bin/sh
### BEGIN INIT INFO
# Provides:          rampart-firewall
# Required-Start:    mountkernfs $local_fs
# Required-Stop:
# Should-Start:      $syslog
# X-Start-Before:    $network
# Default-Start:     S
# Default-Stop:
# Short-Description: Load the iptables rules rampart persisted
### END INIT INFO
# init-sysv.sh: rampart's boot-time loader of the persisted rules for a
# sysvinit host, installed as /etc/init.d/rampart-firewall where nothing
# else loads them at boot (play key `boot: ensure`).
# shellcheck shell=sh

case "$1" in
    start | restart | reload | force-reload)
        exec /bin/sh /etc/rampart/firewall-load
        ;;
    stop | status)
        exit 0
        ;;
    *)
        echo "Usage: $0 {start|stop|restart|reload|force-reload|status}" >&2
        exit 3
        ;;
esac
