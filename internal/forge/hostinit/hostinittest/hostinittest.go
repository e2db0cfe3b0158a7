// Package hostinittest runs host setup scripts (forge/hostinit) in tests
// against the commands of an Amazon Linux 2023 ECS host, stubbed
// (shellstub): dnf, mount, nvme, mdadm, mkfs.xfs, systemctl, curl (IMDS and
// the amazon-ebs-autoscale archive), aws.
package hostinittest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ceforge/ceforge/internal/forge/hostinit"
	"github.com/ceforge/ceforge/internal/shellstub"
)

// InstanceID is the id the stubbed instance metadata answers.
const InstanceID = "i-0123456789abcdef0"

// nvmeList is `nvme list` on a host with n instance-store disks (and its
// EBS boot volume, which must never be touched).
func nvmeList(n int) string {
	var b strings.Builder
	b.WriteString("Node                  Generic               SN                   Model                                    Namespace Usage                      Format           FW Rev\n")
	b.WriteString("--------------------- --------------------- -------------------- ---------------------------------------- --------- -------------------------- ---------------- --------\n")
	b.WriteString("/dev/nvme0n1          /dev/ng0n1            vol0abc              Amazon Elastic Block Store               1          53.69  GB /  53.69  GB    512   B +  0 B   1.0\n")
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "/dev/nvme%dn1          /dev/ng%dn1            AWS%08d          Amazon EC2 NVMe Instance Storage         1         474.00  GB / 474.00  GB    512   B +  0 B   0\n", i, i, i)
	}
	return b.String()
}

// autoscaleTarball is what the pinned archive URL serves, with an
// install.sh that records its arguments.
func autoscaleTarball(t testing.TB) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	script := "#!/bin/sh\nprintf '%s\\n' \"$@\" > \"$STUB_ROOT/install.args\"\n"
	dir := "amazon-ebs-autoscale-" + hostinit.AutoscaleCommit + "/"
	require.NoError(t, tw.WriteHeader(&tar.Header{Name: dir, Typeflag: tar.TypeDir, Mode: 0o755}))
	require.NoError(t, tw.WriteHeader(&tar.Header{Name: dir + "install.sh", Mode: 0o755, Size: int64(len(script))}))
	_, err := tw.Write([]byte(script))
	require.NoError(t, err)
	require.NoError(t, tw.Close())
	require.NoError(t, zw.Close())
	return buf.Bytes()
}

// Sandbox stubs what an AL2023 ECS host offers. Environment knobs:
// NVME_DISKS, DNF_FAIL (packages), MOUNT_FAIL (a mount type), CURL_FAIL,
// DOCKER_ACTIVE, AUTOSCALE_ACTIVE (exit codes of systemctl is-active).
func Sandbox(t testing.TB) *shellstub.Sandbox {
	t.Helper()
	s := shellstub.New(t)
	require.NoError(t, os.WriteFile(s.Path("autoscale.tar.gz"), autoscaleTarball(t), 0o644))
	s.Stub("hostname", "echo ip-10-0-0-1")
	s.Stub("sleep", "")
	s.Stub("dnf", `for p in "$@"; do case " ${DNF_FAIL:-} " in *" $p "*) exit 1;; esac; done`)
	s.Stub("mount", `[ -n "${MOUNT_FAIL:-}" ] && [ "$1 $2" = "-t $MOUNT_FAIL" ] && exit 32; exit 0`)
	s.Stub("nvme", `n=${NVME_DISKS:-0}; cat <<'EOF'
`+strings.TrimSuffix(nvmeList(0), "\n")+`
EOF
for i in $(seq 1 "$n"); do printf '/dev/nvme%dn1          /dev/ng%dn1            AWS%08d          Amazon EC2 NVMe Instance Storage         1         474.00  GB / 474.00  GB    512   B +  0 B   0\n' "$i" "$i" "$i"; done`)
	s.Stub("mdadm", "")
	s.Stub("mkfs.xfs", "")
	s.Stub("systemctl", `if [ "$1" = is-active ]; then
  case "$*" in *ebs-autoscale*) exit "${AUTOSCALE_ACTIVE:-0}";; *docker*) exit "${DOCKER_ACTIVE:-0}";; esac
fi`)
	s.Stub("curl", `case "$*" in
*api/token*) echo TOKEN ;;
*meta-data/instance-id*) echo `+InstanceID+` ;;
*amazon-ebs-autoscale*) [ -n "${CURL_FAIL:-}" ] && exit 22; cat "$STUB_ROOT/autoscale.tar.gz" ;;
*) exit 7 ;;
esac`)
	s.Stub("aws", "")
	return s
}

// Run executes a host script in s, with every host path moved under the
// sandbox's root.
func Run(t testing.TB, s *shellstub.Sandbox, script string, env ...string) shellstub.Result {
	t.Helper()
	require.Contains(t, script, "CEFORGE_ROOT=''")
	script = strings.Replace(script, "CEFORGE_ROOT=''", "CEFORGE_ROOT="+hostinit.Quote(s.Root), 1)
	return s.Run(script, env...)
}
