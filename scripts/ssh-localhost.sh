#!/bin/bash
# Runs the deploy tests' real-sshd case (test_deploy: test_ssh_real_sshd)
# against an OpenSSH server that this script starts on 127.0.0.1 with
# throwaway host and client keys, then stops it.  On demand, not in CI:
# it needs openssh-server (installed with apt-get when missing) and root
# (sshd's privilege separation).  Usage: scripts/ssh-localhost.sh [BUILD_DIR]
set -euo pipefail
BUILD=${1:-build}
PORT=${DP_SSHD_PORT:-2222}
if ! command -v /usr/sbin/sshd >/dev/null; then
    apt-get update -q && apt-get install -y -q openssh-server
fi
D=$(mktemp -d /tmp/dp-sshd-XXXXXX)
cleanup() {
    [ -s "$D/sshd.pid" ] && kill "$(cat "$D/sshd.pid")" 2>/dev/null || true
    rm -rf "$D"
}
trap cleanup EXIT
ssh-keygen -q -t ed25519 -N '' -f "$D/host_key"
ssh-keygen -q -t ed25519 -N '' -f "$D/client_key"
cp "$D/client_key.pub" "$D/authorized_keys"
echo "[127.0.0.1]:$PORT $(cat "$D/host_key.pub")" > "$D/known_hosts"
cat > "$D/sshd_config" <<CONF
Port $PORT
ListenAddress 127.0.0.1
HostKey $D/host_key
AuthorizedKeysFile $D/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PidFile $D/sshd.pid
CONF
mkdir -p /run/sshd
/usr/sbin/sshd -f "$D/sshd_config" -E "$D/sshd.log"
for _ in $(seq 50); do [ -s "$D/sshd.pid" ] && break; sleep 0.1; done
# The executor runs "ssh_command" as the ssh program; this one only adds the
# throwaway known_hosts file, so the host key is checked as in production.
cat > "$D/ssh" <<SSH
#!/bin/sh
exec ssh -o UserKnownHostsFile=$D/known_hosts -o StrictHostKeyChecking=yes "\$@"
SSH
chmod 755 "$D/ssh"
export DP_TEST_SSH_HOST=127.0.0.1 DP_TEST_SSH_PORT=$PORT DP_TEST_SSH_USER=$(id -un) \
       DP_TEST_SSH_KEY=$D/client_key DP_TEST_SSH_COMMAND=$D/ssh
"$BUILD/tests/test_deploy" test_ssh_real_sshd
