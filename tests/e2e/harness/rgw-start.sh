#!/usr/bin/env bash
# Starts a throw-away single-node Ceph cluster with radosgw and STS, everything under DIR
# and listening on 127.0.0.1 only:
#   one monitor (MON_PORT), one memstore OSD (ports chosen by Ceph in 6800-7300, loopback),
#   radosgw on RGW_PORT, authentication between daemons off.
# Then creates the launcher user (LAUNCHERKEY / LAUNCHERSECRET, allowed to assume roles)
# and role `nbrole` (arn:aws:iam:::role/nbrole) that trusts it, with an `s3:*` role policy,
# so that what a session can reach is decided by its session policy alone.
#
# Usage: rgw-start.sh DIR RGW_PORT MON_PORT
# Stop with rgw-stop.sh DIR (also after a failed start). Logs are in DIR/log.
set -euo pipefail

D=${1:?usage: rgw-start.sh DIR RGW_PORT MON_PORT}
PORT=${2:?usage: rgw-start.sh DIR RGW_PORT MON_PORT}
MONPORT=${3:?usage: rgw-start.sh DIR RGW_PORT MON_PORT}
D=$(cd "$D" && pwd)

fail() {
  echo "rgw-start: $*" >&2
  for f in "$D"/log/*.log; do
    [ -f "$f" ] || continue
    echo "--- last lines of $f" >&2
    tail -n 15 "$f" >&2
  done
  exit 1
}
trap 'fail "command failed on line $LINENO"' ERR

for cmd in ceph-mon ceph-osd radosgw radosgw-admin monmaptool ceph-authtool ceph curl; do
  command -v "$cmd" >/dev/null || { echo "rgw-start: $cmd not found; install the Debian packages radosgw ceph-mon ceph-osd curl" >&2; exit 1; }
done

mkdir -p "$D"/{run,log,mon,osd,rgw}
cd "$D"
FSID=$(cat /proc/sys/kernel/random/uuid)
cat >ceph.conf <<EOF
[global]
fsid = $FSID
mon host = v1:127.0.0.1:$MONPORT
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind msgr2 = false
auth cluster required = none
auth service required = none
auth client required = none
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
mon warn on pool no redundancy = false
osd pool default pg autoscale mode = off
osd pool default pg num = 8
osd pool default pgp num = 8
mon max pg per osd = 1000
osd crush chooseleaf type = 0
osd objectstore = memstore
# The monitor refuses to start (ENOSPC) when its disk has less than 5% free; a throwaway
# cluster on a shared build machine whose targets fill the disk only needs a little room.
mon data avail crit = 1
mon data avail warn = 2
memstore device bytes = 536870912
run dir = $D/run
admin socket = $D/run/\$name.asok
pid file = $D/run/\$name.pid
log file = $D/log/\$name.log
mon data = $D/mon/\$id
osd data = $D/osd/\$id
keyring = $D/keyring
crash dir = $D/crash
[client.rgw]
rgw frontends = beast endpoint=127.0.0.1:$PORT
rgw data = $D/rgw
rgw sts key = abcdefghijklmnop
rgw s3 auth use sts = true
# Sessions as short as 20 s (radosgw's default minimum is AWS's 900 s), so that refresh
# tests can watch credentials expire within a test run.
rgw sts min session duration = 20
EOF

T="timeout 60"
ceph-authtool --create-keyring keyring --gen-key -n mon. --cap mon 'allow *' >/dev/null
# A monitor on a port other than 6789 must be added with --addv and an explicit v1 address.
monmaptool --create --addv a "[v1:127.0.0.1:$MONPORT]" --fsid "$FSID" monmap >/dev/null
ceph-mon -c ceph.conf --mkfs -i a --monmap monmap --keyring keyring
ceph-mon -c ceph.conf -i a
U=$(cat /proc/sys/kernel/random/uuid)
ID=$($T ceph -c ceph.conf --connect-timeout 30 osd new "$U")
mkdir -p "osd/$ID"
$T ceph-osd -c ceph.conf -i "$ID" --mkfs --osd-uuid "$U" 2>/dev/null
# Just after the monitor forms its quorum, an OSD's first command can be answered
# "wrong fsid" and the OSD exits during init; a second start succeeds.
started=0
for _ in 1 2 3 4 5; do
  if ceph-osd -c ceph.conf -i "$ID" 2>/dev/null; then started=1; break; fi
  sleep 1
done
[ $started = 1 ] || fail "ceph-osd did not start"
radosgw -c ceph.conf -n client.rgw

ready=0
for _ in $(seq 1 600); do
  if curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$PORT/"; then ready=1; break; fi
  sleep 0.1
done
[ $ready = 1 ] || fail "radosgw did not answer on 127.0.0.1:$PORT within 60 s"

A="$T radosgw-admin -c ceph.conf -n client.rgw"
$A user create --uid=launcher --display-name=launcher \
  --access-key=LAUNCHERKEY --secret=LAUNCHERSECRET >/dev/null 2>&1
$A caps add --uid=launcher --caps="roles=*" >/dev/null 2>&1
$A role create --role-name=nbrole --path=/ \
  --assume-role-policy-doc='{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":["arn:aws:iam:::user/launcher"]},"Action":["sts:AssumeRole"]}]}' \
  >/dev/null 2>&1
$A role-policy put --role-name=nbrole --policy-name=s3all \
  --policy-doc='{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:*"],"Resource":["arn:aws:s3:::*"]}]}' \
  >/dev/null 2>&1
echo "rgw ready on 127.0.0.1:$PORT"
