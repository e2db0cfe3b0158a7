package hostinit_test

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"mvdan.cc/sh/v3/expand"
	"mvdan.cc/sh/v3/syntax"

	"github.com/ceforge/ceforge/internal/forge/hostinit"
	"github.com/ceforge/ceforge/internal/forge/hostinit/hostinittest"
	"github.com/ceforge/ceforge/internal/shellstub"
)

const (
	efsID   = "fs-0123456789abcdef0"
	fsxDNS  = "fs-0fedcba9876543210.fsx.eu-west-1.amazonaws.com"
	fsxName = "abcdefgh"
	iid     = hostinittest.InstanceID
)

func hostSandbox(t *testing.T) *shellstub.Sandbox { return hostinittest.Sandbox(t) }

func run(t *testing.T, s *shellstub.Sandbox, spec hostinit.Spec, env ...string) shellstub.Result {
	t.Helper()
	return hostinittest.Run(t, s, hostinit.Render(spec), env...)
}

func fast() hostinit.Spec {
	return hostinit.Spec{Region: "eu-west-1", FastStorage: true, FastStorageMount: "/scratch", DockerDir: "/scratch/docker", TaskScratchDir: "/scratch/tasks"}
}

func withoutRoot(s *shellstub.Sandbox, calls []string) []string {
	var out []string
	for _, c := range calls {
		out = append(out, strings.ReplaceAll(c, s.Root, ""))
	}
	return out
}

// Every storage variant, run against stub commands: what is installed,
// assembled and mounted, in which order, and how each failure shows.
func TestHostSetupVariants(t *testing.T) {
	cases := []struct {
		name      string
		spec      hostinit.Spec
		env       []string
		wantExit  int
		dnf       []string
		mounts    []string
		mdadm     []string
		mkfs      []string
		systemctl []string
		tag       string
		output    []string
	}{
		{
			name: "none", spec: hostinit.Spec{Region: "eu-west-1"},
			systemctl: nil, output: []string{"host setup done"},
		},
		{
			name: "EFS (created or existing)", spec: hostinit.Spec{Region: "eu-west-1", EFSID: efsID, EFSMount: "/mnt/efs"},
			dnf:    []string{"dnf install -y -q amazon-efs-utils"},
			mounts: []string{"mount -t efs -o tls,_netdev " + efsID + ":/ /mnt/efs"},
			output: []string{"EFS " + efsID + " mounted at /mnt/efs", "host setup done"},
		},
		{
			name: "EFS without amazon-efs-utils mounts over NFS", spec: hostinit.Spec{Region: "eu-west-1", EFSID: efsID, EFSMount: "/mnt/efs"},
			env: []string{"DNF_FAIL=amazon-efs-utils"},
			dnf: []string{"dnf install -y -q amazon-efs-utils"},
			mounts: []string{"mount -t nfs4 -o nfsvers=4.1,rsize=1048576,wsize=1048576,hard,timeo=600,retrans=2,noresvport,_netdev " +
				efsID + ".efs.eu-west-1.amazonaws.com:/ /mnt/efs"},
			output: []string{"mounting over NFS 4.1", "host setup done"},
		},
		{
			name: "EFS that cannot be mounted keeps the host out of the cluster", spec: hostinit.Spec{Region: "eu-west-1", EFSID: efsID, EFSMount: "/mnt/efs"},
			env: []string{"MOUNT_FAIL=efs"}, wantExit: 1,
			dnf:       []string{"dnf install -y -q amazon-efs-utils"},
			systemctl: []string{"systemctl mask --now ecs"},
			tag:       "Key=ceforge:host-setup,Value=failed:efs",
			output:    []string{"mount attempt 30 failed", "FAILED: efs", "the ECS agent is disabled"},
		},
		{
			name: "FSx (created or existing)", spec: hostinit.Spec{Region: "eu-west-1", FSxDNS: fsxDNS, FSxMountName: fsxName, FSxMount: "/mnt/fsx"},
			dnf:    []string{"dnf install -y -q lustre-client"},
			mounts: []string{"mount -t lustre -o relatime,flock,_netdev " + fsxDNS + "@tcp:/" + fsxName + " /mnt/fsx"},
			output: []string{"host setup done"},
		},
		{
			name: "FSx without the Lustre client", spec: hostinit.Spec{Region: "eu-west-1", FSxDNS: fsxDNS, FSxMountName: fsxName, FSxMount: "/mnt/fsx"},
			env: []string{"DNF_FAIL=lustre-client"}, wantExit: 1,
			dnf:       []string{"dnf install -y -q lustre-client"},
			systemctl: []string{"systemctl mask --now ecs"},
			tag:       "Key=ceforge:host-setup,Value=failed:fsx",
		},
		{
			name: "fast storage, no NVMe disk", spec: fast(), env: []string{"NVME_DISKS=0"},
			output: []string{"has no NVMe instance store; Docker and task scratch stay on the boot volume", "host setup done"},
		},
		{
			name: "fast storage, one NVMe disk", spec: fast(), env: []string{"NVME_DISKS=1"},
			mkfs:      []string{"mkfs.xfs -f /dev/nvme1n1"},
			mounts:    []string{"mount -o noatime /dev/nvme1n1 /scratch", "mount --bind /scratch/docker /var/lib/docker"},
			systemctl: []string{"systemctl is-active --quiet docker", "systemctl stop docker.socket docker", "systemctl start docker"},
			output:    []string{"Docker and task scratch on /dev/nvme1n1 at /scratch", "host setup done"},
		},
		{
			name: "fast storage, three NVMe disks in RAID 0", spec: fast(), env: []string{"NVME_DISKS=3"},
			mdadm:     []string{"mdadm --create /dev/md0 --run --level=0 --raid-devices=3 /dev/nvme1n1 /dev/nvme2n1 /dev/nvme3n1"},
			mkfs:      []string{"mkfs.xfs -f /dev/md0"},
			mounts:    []string{"mount -o noatime /dev/md0 /scratch", "mount --bind /scratch/docker /var/lib/docker"},
			systemctl: []string{"systemctl is-active --quiet docker", "systemctl stop docker.socket docker", "systemctl start docker"},
			output:    []string{"RAID 0 over 3 NVMe instance stores", "host setup done"},
		},
		{
			name: "EBS auto-scale", spec: hostinit.Spec{Region: "eu-west-1", EbsAutoScale: true, EbsBlockGiB: 100},
			dnf:       []string{"dnf install -y -q jq lvm2 e2fsprogs tar gzip"},
			systemctl: []string{"systemctl is-active --quiet docker", "systemctl stop docker.socket docker", "systemctl is-active --quiet ebs-autoscale", "systemctl start docker"},
			output:    []string{"grows by 100 GiB volumes", "host setup done"},
		},
		{
			name: "EBS auto-scale that cannot be downloaded is reported", spec: hostinit.Spec{Region: "eu-west-1", EbsAutoScale: true, EbsBlockGiB: 100},
			env: []string{"CURL_FAIL=1"}, wantExit: 1,
			dnf:    []string{"dnf install -y -q jq lvm2 e2fsprogs tar gzip"},
			tag:    "Key=ceforge:host-setup,Value=failed:ebs-autoscale",
			output: []string{"FAILED: ebs-autoscale: amazon-ebs-autoscale could not be installed", "finished with failures: ebs-autoscale"},
		},
		{
			name: "EBS auto-scale whose daemon does not run is reported", spec: hostinit.Spec{Region: "eu-west-1", EbsAutoScale: true, EbsBlockGiB: 100},
			env: []string{"AUTOSCALE_ACTIVE=3"}, wantExit: 1,
			dnf:       []string{"dnf install -y -q jq lvm2 e2fsprogs tar gzip"},
			systemctl: []string{"systemctl is-active --quiet docker", "systemctl stop docker.socket docker", "systemctl is-active --quiet ebs-autoscale", "systemctl start docker"},
			tag:       "Key=ceforge:host-setup,Value=failed:ebs-autoscale",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := hostSandbox(t)
			res := run(t, s, tc.spec, tc.env...)
			require.Equal(t, tc.wantExit, res.ExitCode, res.Output)
			require.Equal(t, tc.dnf, s.Called("dnf"), res.Output)
			mounts := withoutRoot(s, s.Called("mount"))
			if !strings.Contains(tc.name, "cannot be mounted") {
				require.Equal(t, tc.mounts, mounts, res.Output)
			} else {
				require.Len(t, mounts, 30, "mounts are retried while mount targets settle")
			}
			require.Equal(t, tc.mdadm, s.Called("mdadm"))
			require.Equal(t, tc.mkfs, s.Called("mkfs.xfs"))
			var sys []string
			for _, c := range s.Called("systemctl") {
				if c != "systemctl is-active --quiet docker" || tc.systemctl != nil {
					sys = append(sys, c)
				}
			}
			if tc.systemctl == nil {
				sys = nil
			}
			require.Equal(t, tc.systemctl, sys)
			for _, want := range tc.output {
				require.Contains(t, res.Output, want)
			}
			if tc.tag != "" {
				require.Equal(t, []string{"aws ec2 create-tags --region eu-west-1 --resources " + iid + " --tags " + tc.tag}, s.Called("aws"))
			} else {
				require.Empty(t, s.Called("aws"), "nothing to report")
			}
			ecs := s.ReadFile("etc/ecs/ecs.config")
			require.Equal(t, "ECS_IMAGE_PULL_BEHAVIOR=once\nECS_ENABLE_SPOT_INSTANCE_DRAINING=true\n", ecs)
			require.Contains(t, s.ReadFile("var/log/ceforge-host.log"), "host setup starting", "the host log keeps every line")
			if tc.spec.FastStorage {
				st, err := os.Stat(s.Path("scratch/tasks"))
				require.NoError(t, err, "task scratch exists even without NVMe")
				require.Equal(t, os.ModeSticky|0o777, st.Mode()&(os.ModeSticky|os.ModePerm))
			}
			if tc.spec.EbsAutoScale && !strings.Contains(tc.name, "downloaded") {
				require.Equal(t, "--imdsv2\n--file-system\nlvm.ext4\n--mountpoint\n"+s.Root+"/var/lib/docker\n--volume-type\ngp3\n--initial-size\n100\n--min-ebs-volume-size\n100\n--max-ebs-volume-size\n100\n",
					s.ReadFile("install.args"))
			}
		})
	}
}

// Every value is one single-quoted word of the header, whatever it holds,
// and the script parses; the ECS settings arrive verbatim.
func TestHostSetupQuotesEveryValue(t *testing.T) {
	header := []string{"CEFORGE_ROOT", "CEFORGE_REGION", "CEFORGE_ECS_CONFIG", "CEFORGE_EFS_ID", "CEFORGE_EFS_MOUNT", "CEFORGE_FSX_DNS",
		"CEFORGE_FSX_MOUNT_NAME", "CEFORGE_FSX_MOUNT", "CEFORGE_FAST_STORAGE", "CEFORGE_SCRATCH", "CEFORGE_DOCKER_DIR",
		"CEFORGE_TASK_SCRATCH", "CEFORGE_EBS_AUTOSCALE", "CEFORGE_EBS_BLOCK_GIB", "CEFORGE_AUTOSCALE_URL"}
	nasty := []string{"", "it's", "$(shutdown -h now)", "`id`", "a\nb", "EOF\nrm -rf /\n", `\'`, "${IFS}"}
	for _, v := range nasty {
		spec := hostinit.Spec{Region: v, EcsConfig: "ECS_X=" + v, EFSID: v, EFSMount: v, FSxDNS: v, FSxMountName: v, FSxMount: v}
		f, err := syntax.NewParser(syntax.Variant(syntax.LangBash)).Parse(strings.NewReader(hostinit.Render(spec)), "host")
		require.NoError(t, err)
		seen := map[string]string{}
		for _, st := range f.Stmts {
			c, ok := st.Cmd.(*syntax.CallExpr)
			if !ok || len(c.Args) > 0 || len(c.Assigns) != 1 || !strings.HasPrefix(c.Assigns[0].Name.Value, "CEFORGE_") {
				continue
			}
			a := c.Assigns[0]
			if !slices.Contains(header, a.Name.Value) {
				continue
			}
			for _, p := range a.Value.Parts {
				switch p := p.(type) {
				case *syntax.SglQuoted:
				case *syntax.DblQuoted:
					require.Len(t, p.Parts, 1)
					lit, ok := p.Parts[0].(*syntax.Lit)
					require.True(t, ok && lit.Value == "'", "%s may expand", a.Name.Value)
				default:
					t.Fatalf("%s: word part %T can expand", a.Name.Value, p)
				}
			}
			got, err := expand.Literal(nil, a.Value)
			require.NoError(t, err)
			seen[a.Name.Value] = got
		}
		require.Len(t, seen, len(header), "each value assigned once, single-quoted")
		for _, name := range []string{"CEFORGE_REGION", "CEFORGE_EFS_ID", "CEFORGE_EFS_MOUNT", "CEFORGE_FSX_DNS", "CEFORGE_FSX_MOUNT_NAME", "CEFORGE_FSX_MOUNT"} {
			require.Equal(t, v, seen[name], name)
		}
		require.Equal(t, strings.TrimRight("ECS_X="+v, "\n"), seen["CEFORGE_ECS_CONFIG"])
	}

	s := hostSandbox(t)
	cfg := "ECS_ENABLE_GPU_SUPPORT=true\nECS_X='$(id)' `id` EOF\n"
	res := run(t, s, hostinit.Spec{Region: "eu-west-1", EcsConfig: cfg})
	require.Equal(t, 0, res.ExitCode, res.Output)
	require.Equal(t, "ECS_IMAGE_PULL_BEHAVIOR=once\nECS_ENABLE_SPOT_INSTANCE_DRAINING=true\n"+cfg, s.ReadFile("etc/ecs/ecs.config"))
}
