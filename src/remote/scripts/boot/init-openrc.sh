#!/sbin/openrc-run
# init-openrc.sh: rampart's boot-time loader of the persisted rules for an
# OpenRC host (Alpine), installed as /etc/init.d/rampart-firewall in the
# boot runlevel where nothing else loads them (play key `boot: ensure`).
# shellcheck shell=sh disable=SC2034

description="Load the iptables rules rampart persisted"

depend() {
    before net
    after localmount
}

start() {
    ebegin "Loading the iptables rules rampart persisted"
    /bin/sh /etc/rampart/firewall-load
    eend $?
}
