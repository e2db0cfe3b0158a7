package forge

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ceforge/ceforge/internal/cloudinit"
	"github.com/ceforge/ceforge/internal/computeenv"
	"github.com/ceforge/ceforge/internal/forge/hostinit/hostinittest"
)

// Every storage variant of a forged CE, end to end on the host side: the
// launch template's user data as forge renders it, parsed as cloud-init
// parses it (one shell-script part), executed against a stubbed AL2023 ECS
// host. What each variant installs, assembles and mounts.
func TestUserDataRunsOnTheHostForEveryStorageVariant(t *testing.T) {
	const (
		efsID   = "fs-0aaaaaaaaaaaaaaaa"
		fsxDNS  = "fs-0bbbbbbbbbbbbbbbb.fsx.eu-west-1.amazonaws.com"
		fsxName = "mnt1234"
	)
	type mut = func(*computeenv.BatchOptions, *computeenv.ForgeOptions)
	fusion := func(b *computeenv.BatchOptions, f *computeenv.ForgeOptions) {
		b.WaveEnabled, b.Fusion2Enabled, f.FastStorage = true, true, true
	}
	cases := []struct {
		name          string
		mut           mut
		efs, fsx      bool // user data knows the file system
		env           []string
		dnf, mounts   []string
		mdadm, mkfs   []string
		installArgs   string
		outputPattern string
	}{
		{name: "no storage option", mut: func(*computeenv.BatchOptions, *computeenv.ForgeOptions) {}, outputPattern: "host setup done"},
		{name: "EFS created", efs: true, mut: func(_ *computeenv.BatchOptions, f *computeenv.ForgeOptions) {
			f.EfsCreate, f.EfsMount = true, "/mnt/efs"
		},
			dnf: []string{"dnf install -y -q amazon-efs-utils"}, mounts: []string{"mount -t efs -o tls,_netdev " + efsID + ":/ /mnt/efs"}},
		{name: "EFS existing", efs: true, mut: func(_ *computeenv.BatchOptions, f *computeenv.ForgeOptions) { f.EfsID, f.EfsMount = efsID, "/shared" },
			dnf: []string{"dnf install -y -q amazon-efs-utils"}, mounts: []string{"mount -t efs -o tls,_netdev " + efsID + ":/ /shared"}},
		{name: "FSx created", fsx: true, mut: func(_ *computeenv.BatchOptions, f *computeenv.ForgeOptions) { f.FsxSize, f.FsxMount = 1200, "/mnt/fsx" },
			dnf: []string{"dnf install -y -q lustre-client"}, mounts: []string{"mount -t lustre -o relatime,flock,_netdev " + fsxDNS + "@tcp:/" + fsxName + " /mnt/fsx"}},
		{name: "FSx existing", fsx: true, mut: func(_ *computeenv.BatchOptions, f *computeenv.ForgeOptions) {
			f.FsxName, f.FsxMount = fsxDNS, "/lustre"
		},
			dnf: []string{"dnf install -y -q lustre-client"}, mounts: []string{"mount -t lustre -o relatime,flock,_netdev " + fsxDNS + "@tcp:/" + fsxName + " /lustre"}},
		{name: "fast storage, no NVMe", mut: fusion, env: []string{"NVME_DISKS=0"}, outputPattern: "has no NVMe instance store"},
		{name: "fast storage, one NVMe", mut: fusion, env: []string{"NVME_DISKS=1"},
			mkfs: []string{"mkfs.xfs -f /dev/nvme1n1"}, mounts: []string{"mount -o noatime /dev/nvme1n1 /scratch", "mount --bind /scratch/docker /var/lib/docker"}},
		{name: "fast storage, four NVMe", mut: fusion, env: []string{"NVME_DISKS=4"},
			mdadm: []string{"mdadm --create /dev/md0 --run --level=0 --raid-devices=4 /dev/nvme1n1 /dev/nvme2n1 /dev/nvme3n1 /dev/nvme4n1"},
			mkfs:  []string{"mkfs.xfs -f /dev/md0"}, mounts: []string{"mount -o noatime /dev/md0 /scratch", "mount --bind /scratch/docker /var/lib/docker"}},
		{name: "EBS auto-scale", mut: func(_ *computeenv.BatchOptions, f *computeenv.ForgeOptions) {
			f.EbsAutoScale, f.EbsBlockSize, f.EbsBootSize = true, 150, 80
		},
			dnf:         []string{"dnf install -y -q jq lvm2 e2fsprogs tar gzip"},
			installArgs: "--imdsv2 --file-system lvm.ext4 --mountpoint <root>/var/lib/docker --volume-type gp3 --initial-size 150 --min-ebs-volume-size 150 --max-ebs-volume-size 150"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := ce(tc.mut)
			c.Batch.Forge.AllowBuckets = nil
			d := NewDesign("ceforge-", c)
			var e, dns, name string
			if tc.efs {
				e = efsID
			}
			if tc.fsx {
				dns, name = fsxDNS, fsxName
			}
			raw, err := base64.StdEncoding.DecodeString(d.UserData(e, dns, name))
			require.NoError(t, err)
			require.LessOrEqual(t, len(raw), 16<<10, "EC2's user-data limit")
			parts, err := cloudinit.Parse(raw)
			require.NoError(t, err)
			require.Len(t, parts, 1)
			require.Equal(t, cloudinit.ShellScript, parts[0].Type)

			s := hostinittest.Sandbox(t)
			res := hostinittest.Run(t, s, parts[0].Body, tc.env...)
			require.Equal(t, 0, res.ExitCode, res.Output)
			strip := func(calls []string) []string {
				var out []string
				for _, c := range calls {
					out = append(out, strings.ReplaceAll(c, s.Root, ""))
				}
				return out
			}
			require.Equal(t, tc.dnf, s.Called("dnf"), res.Output)
			require.Equal(t, tc.mounts, strip(s.Called("mount")), res.Output)
			require.Equal(t, tc.mdadm, s.Called("mdadm"))
			require.Equal(t, tc.mkfs, s.Called("mkfs.xfs"))
			if tc.installArgs != "" {
				require.Equal(t, tc.installArgs, strings.ReplaceAll(strings.Join(strings.Fields(s.ReadFile("install.args")), " "), s.Root, "<root>"))
				require.Equal(t, 80, d.BootDiskGiB, "the boot size goes to the launch template's boot volume")
			}
			require.Contains(t, res.Output, tc.outputPattern)
			require.Contains(t, s.ReadFile("etc/ecs/ecs.config"), "ECS_ENABLE_SPOT_INSTANCE_DRAINING=true")
		})
	}
}
