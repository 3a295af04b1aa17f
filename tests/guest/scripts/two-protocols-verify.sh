#!/bin/sh
# shellcheck disable=SC2046 # $(fio_common ...) is split into fio arguments on purpose
# two-protocols-verify.sh (guest; run-guest.sh prepends the guest library lib.sh): one volume over
# iSCSI and one over NVMe/TCP at once, written and verified by Linux's own initiators.
#   1. log in to IQN at ADDR:ISCSI_PORT, connect NQN at ADDR:NVME_PORT
#   2. prefill both regions (a valid fio block in every 4 KiB)
#   3. FAULT-WINDOW-OPEN: time-based random writes on both for RUNTIME s, every BACKLOG written blocks
#      read back and verified while writing goes on (the host pulls a leg now); FAULT-WINDOW-CLOSED
#   4. a read-verify pass over both whole regions, logout and disconnect
# Params: IQN NQN ISCSI_PORT NVME_PORT (required), ADDR (10.0.2.2), RUNTIME (20), BACKLOG (512), SIZE...
set -u
: "${IQN:?}" "${NQN:?}" "${ISCSI_PORT:?}" "${NVME_PORT:?}"
ADDR=${ADDR:-10.0.2.2}; RUNTIME=${RUNTIME:-20}; BACKLOG=${BACKLOG:-512}
for m in iscsi_tcp sd_mod sg; do modprobe $m || fail "modprobe $m"; done
iscsid || fail "iscsid did not start"
wait_until 20 tcp_open "$ADDR" "$ISCSI_PORT" || { echo "ISCSI_LOGIN=failed (no TCP)"; exit 1; }
iscsiadm -m node -o new -T "$IQN" -p "$ADDR:$ISCSI_PORT" >/dev/null || fail "iscsiadm -o new"
iscsiadm -m node -T "$IQN" -p "$ADDR:$ISCSI_PORT" --login || { echo "ISCSI_LOGIN=failed"; print_kernel_warnings; exit 1; }
iscsi_dev() {
  _d=$(iscsiadm -m session -P3 2>/dev/null | awk '/ Lun: /{l=$NF} /Attached scsi disk/ && l==0 {print $4; exit}')
  [ -n "$_d" ] && [ -b "/dev/$_d" ] && echo "/dev/$_d"
}
wait_until 30 iscsi_dev || { echo "ISCSI_LOGIN=failed (no disk)"; exit 1; }
SDEV=$(iscsi_dev)
echo "ISCSI_LOGIN=ok dev=$SDEV model=$(tr -s ' ' < /sys/block/${SDEV#/dev/}/device/model)"
PORT=$NVME_PORT
nvme_attach
NDEV=$DEV
step "prefill $SDEV and $NDEV"
fio_job prefill $(fio_common "$SDEV") --rw=write --bs=128k --verify_interval="${BS:-4k}" --do_verify=0 \
    --name=prefill-nvme $(fio_common "$NDEV") --rw=write --bs=128k --verify_interval="${BS:-4k}" --do_verify=0
echo "FAULT-WINDOW-OPEN runtime=${RUNTIME}s uptime=$(up)"
fio_job timebased $(fio_common "$SDEV") --rw=randwrite --time_based --runtime="$RUNTIME" --do_verify=1 \
    --verify_backlog="$BACKLOG" \
    --name=timebased-nvme $(fio_common "$NDEV") --rw=randwrite --time_based --runtime="$RUNTIME" --do_verify=1 \
    --verify_backlog="$BACKLOG"
echo "FAULT-WINDOW-CLOSED uptime=$(up)"
step "read-verify pass over both regions"
fio_job readverify $(fio_common "$SDEV") --rw=read --name=readverify-nvme $(fio_common "$NDEV") --rw=read
iscsiadm -m node -T "$IQN" -p "$ADDR:$ISCSI_PORT" --logout >/dev/null; lrc=$?
nvme_detach; drc=$?
print_kernel_warnings
result_line
[ "$VERIFY_ERRORS" = 0 ] && [ "$IO_ERRORS" = 0 ] && [ "$FIO_FAILED" = 0 ] && [ $lrc = 0 ] && [ $drc = 0 ]
