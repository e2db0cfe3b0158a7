// Package hostinit renders the boot script of a forged compute
// environment's hosts (the shell part of its launch template's user data,
// run once by cloud-init on Amazon Linux 2023 ECS-optimized hosts before
// the ECS agent starts). In order, it:
//
//   - appends ceforge's and the user's settings to /etc/ecs/ecs.config;
//   - fast storage: assembles the NVMe instance stores (RAID 0 with mdadm
//     when there are several, a plain file system when one; none: a logged
//     note), mounts them at /scratch and puts Docker's data root
//     (/var/lib/docker) and the tasks' scratch (/scratch/tasks, the tasks'
//     /tmp through Nextflow's aws.batch.volumes) on them;
//   - EBS auto-scale: installs amazon-ebs-autoscale (pinned commit,
//     lvm.ext4 since AL2023 has no btrfs, IMDSv2) on /var/lib/docker with
//     the configured block size;
//   - mounts the EFS (amazon-efs-utils with TLS, else NFS 4.1) and FSx for
//     Lustre (lustre-client) file systems at their mount paths, retrying
//     while DNS and mount targets settle.
//
// Nothing fails silently: every step logs to /var/log/ceforge-host.log
// (and the console); a failed step tags the instance
// ceforge:host-setup=failed:<steps>; and when a file system that tasks
// rely on cannot be mounted the ECS agent is masked, so no task ever runs
// on a host without its work directory.
//
// Every value enters the script once, as a single-quoted assignment in the
// header; the body only expands those variables inside double quotes.
package hostinit

import (
	"strconv"
	"strings"
)

// Paths on the host.
const (
	Log            = "/var/log/ceforge-host.log"
	AutoscaleLog   = "/var/log/ebs-autoscale-install.log"
	DockerRoot     = "/var/lib/docker"
	AutoscaleDir   = "/opt/amazon-ebs-autoscale"
	SetupTag       = "ceforge:host-setup"
	InstanceStores = "Amazon EC2 NVMe Instance Storage" // model name nvme list shows for instance-store disks
)

// amazon-ebs-autoscale is archived by AWS (read-only since May 2024): its
// last commit is pinned. It is the first with IMDSv2 support in every
// script (hosts require IMDSv2).
const (
	AutoscaleCommit = "8c8ac28914bf9302e4f5821ba99daac6e7fc05eb"
	AutoscaleURL    = "https://github.com/awslabs/amazon-ebs-autoscale/archive/" + AutoscaleCommit + ".tar.gz"
)

// Spec is what one compute environment's hosts set up. Values are
// validated for shape (ids, absolute paths) by the CE's rules, but the
// script quotes every one of them regardless.
type Spec struct {
	Region    string
	EcsConfig string // the user's extra ECS agent settings (KEY=value lines)

	EFSID    string
	EFSMount string

	FSxDNS       string
	FSxMountName string
	FSxMount     string

	FastStorage      bool
	FastStorageMount string // e.g. /scratch
	DockerDir        string // under FastStorageMount, bound onto /var/lib/docker
	TaskScratchDir   string // under FastStorageMount

	EbsAutoScale bool
	EbsBlockGiB  int
}

// Quote returns s as one shell word.
func Quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'"'"'`) + "'"
}

func flag(b bool) string {
	if b {
		return "1"
	}
	return ""
}

// Render returns the script.
func Render(s Spec) string {
	var b strings.Builder
	b.WriteString("#!/bin/bash\n# ceforge compute host setup. Generated: every value below is single-quoted.\nset -uo pipefail\n")
	assign := func(name, value string) {
		b.WriteString(name + "=" + Quote(value) + "\n")
	}
	// Tests move every host path under a scratch root.
	assign("CEFORGE_ROOT", "")
	assign("CEFORGE_REGION", s.Region)
	assign("CEFORGE_ECS_CONFIG", strings.TrimRight(s.EcsConfig, "\n"))
	assign("CEFORGE_EFS_ID", s.EFSID)
	assign("CEFORGE_EFS_MOUNT", s.EFSMount)
	assign("CEFORGE_FSX_DNS", s.FSxDNS)
	assign("CEFORGE_FSX_MOUNT_NAME", s.FSxMountName)
	assign("CEFORGE_FSX_MOUNT", s.FSxMount)
	assign("CEFORGE_FAST_STORAGE", flag(s.FastStorage))
	assign("CEFORGE_SCRATCH", s.FastStorageMount)
	assign("CEFORGE_DOCKER_DIR", s.DockerDir)
	assign("CEFORGE_TASK_SCRATCH", s.TaskScratchDir)
	assign("CEFORGE_EBS_AUTOSCALE", flag(s.EbsAutoScale))
	assign("CEFORGE_EBS_BLOCK_GIB", strconv.Itoa(s.EbsBlockGiB))
	assign("CEFORGE_AUTOSCALE_URL", AutoscaleURL)
	b.WriteString(body)
	return b.String()
}

const body = `
CEFORGE_FAILED=()
CEFORGE_FATAL=0
CEFORGE_DOCKER_STOPPED=0
mkdir -p "$CEFORGE_ROOT/var/log"
exec > >(tee -a "$CEFORGE_ROOT` + Log + `") 2>&1
echo "ceforge: host setup starting on $(hostname)"

ceforge_fail() { # step message
  echo "ceforge: FAILED: $1: $2"
  CEFORGE_FAILED+=("$1")
}

# Docker must not run while its data root moves; the ECS agent starts after
# cloud-init, so no container runs yet.
ceforge_docker_stop() {
  [ "$CEFORGE_DOCKER_STOPPED" = 1 ] && return 0
  if systemctl is-active --quiet docker; then
    systemctl stop docker.socket docker
    CEFORGE_DOCKER_STOPPED=1
  fi
  return 0
}

ceforge_install() { # packages...
  dnf install -y -q "$@"
}

# ECS agent settings: ceforge's, then the compute environment's.
mkdir -p "$CEFORGE_ROOT/etc/ecs"
{
  echo ECS_IMAGE_PULL_BEHAVIOR=once
  echo ECS_ENABLE_SPOT_INSTANCE_DRAINING=true
  [ -n "$CEFORGE_ECS_CONFIG" ] && printf '%s\n' "$CEFORGE_ECS_CONFIG"
} >> "$CEFORGE_ROOT/etc/ecs/ecs.config"

ceforge_fast_storage() {
  local disks=() d dev
  command -v nvme >/dev/null 2>&1 || ceforge_install nvme-cli || return 1
  while read -r d; do
    [ -n "$d" ] && disks+=("$d")
  done < <(nvme list | awk -v model="` + InstanceStores + `" 'index($0, model) && $1 ~ /^\/dev\// {print $1}')
  mkdir -p "$CEFORGE_ROOT$CEFORGE_TASK_SCRATCH" && chmod 1777 "$CEFORGE_ROOT$CEFORGE_TASK_SCRATCH"
  case ${#disks[@]} in
  0)
    echo "ceforge: fast storage: this instance type has no NVMe instance store; Docker and task scratch stay on the boot volume"
    return 0 ;;
  1)
    dev=${disks[0]}
    echo "ceforge: fast storage: one NVMe instance store ($dev)" ;;
  *)
    command -v mdadm >/dev/null 2>&1 || ceforge_install mdadm || return 1
    echo "ceforge: fast storage: RAID 0 over ${#disks[@]} NVMe instance stores (${disks[*]})"
    mdadm --create /dev/md0 --run --level=0 --raid-devices="${#disks[@]}" "${disks[@]}" || return 1
    dev=/dev/md0 ;;
  esac
  mkfs.xfs -f "$dev" || return 1
  mkdir -p "$CEFORGE_ROOT$CEFORGE_SCRATCH" && mount -o noatime "$dev" "$CEFORGE_ROOT$CEFORGE_SCRATCH" || return 1
  mkdir -p "$CEFORGE_ROOT$CEFORGE_DOCKER_DIR" "$CEFORGE_ROOT$CEFORGE_TASK_SCRATCH" && chmod 1777 "$CEFORGE_ROOT$CEFORGE_TASK_SCRATCH"
  ceforge_docker_stop
  mkdir -p "$CEFORGE_ROOT` + DockerRoot + `"
  cp -a "$CEFORGE_ROOT` + DockerRoot + `/." "$CEFORGE_ROOT$CEFORGE_DOCKER_DIR/" || return 1
  mount --bind "$CEFORGE_ROOT$CEFORGE_DOCKER_DIR" "$CEFORGE_ROOT` + DockerRoot + `" || return 1
  echo "ceforge: fast storage: Docker and task scratch on $dev at $CEFORGE_SCRATCH"
}

ceforge_ebs_autoscale() {
  local dir="$CEFORGE_ROOT` + AutoscaleDir + `"
  command -v aws >/dev/null 2>&1 || ceforge_install awscli-2 || return 1
  ceforge_install jq lvm2 e2fsprogs tar gzip || return 1
  mkdir -p "$dir" || return 1
  curl -fsSL --retry 5 --retry-connrefused "$CEFORGE_AUTOSCALE_URL" | tar -xz -C "$dir" --strip-components=1 || return 1
  ceforge_docker_stop
  (cd "$dir" && sh ./install.sh --imdsv2 --file-system lvm.ext4 --mountpoint "$CEFORGE_ROOT` + DockerRoot + `" \
    --volume-type gp3 --initial-size "$CEFORGE_EBS_BLOCK_GIB" \
    --min-ebs-volume-size "$CEFORGE_EBS_BLOCK_GIB" --max-ebs-volume-size "$CEFORGE_EBS_BLOCK_GIB") \
    >> "$CEFORGE_ROOT` + AutoscaleLog + `" 2>&1 || return 1
  systemctl is-active --quiet ebs-autoscale || return 1
  echo "ceforge: EBS auto-scale: Docker's data root grows by ${CEFORGE_EBS_BLOCK_GIB} GiB volumes"
}

ceforge_mount_retry() { # what mount-args...
  local what=$1 i
  shift
  for i in $(seq 1 30); do
    mount "$@" && return 0
    echo "ceforge: $what: mount attempt $i failed; retrying in 10 s"
    sleep 10
  done
  return 1
}

ceforge_efs() {
  local target="$CEFORGE_ROOT$CEFORGE_EFS_MOUNT"
  mkdir -p "$target" || return 1
  if ceforge_install amazon-efs-utils; then
    ceforge_mount_retry EFS -t efs -o tls,_netdev "$CEFORGE_EFS_ID:/" "$target" || return 1
  else
    echo "ceforge: EFS: amazon-efs-utils could not be installed; mounting over NFS 4.1 without TLS"
    ceforge_mount_retry EFS -t nfs4 -o nfsvers=4.1,rsize=1048576,wsize=1048576,hard,timeo=600,retrans=2,noresvport,_netdev \
      "$CEFORGE_EFS_ID.efs.$CEFORGE_REGION.amazonaws.com:/" "$target" || return 1
  fi
  echo "ceforge: EFS $CEFORGE_EFS_ID mounted at $CEFORGE_EFS_MOUNT"
}

ceforge_fsx() {
  local target="$CEFORGE_ROOT$CEFORGE_FSX_MOUNT"
  mkdir -p "$target" || return 1
  ceforge_install lustre-client || return 1
  ceforge_mount_retry FSx -t lustre -o relatime,flock,_netdev "$CEFORGE_FSX_DNS@tcp:/$CEFORGE_FSX_MOUNT_NAME" "$target" || return 1
  echo "ceforge: FSx $CEFORGE_FSX_DNS mounted at $CEFORGE_FSX_MOUNT"
}

if [ -n "$CEFORGE_FAST_STORAGE" ]; then
  ceforge_fast_storage || ceforge_fail fast-storage "the NVMe instance stores could not be assembled; Docker and task scratch stay on the boot volume"
fi
if [ -n "$CEFORGE_EBS_AUTOSCALE" ]; then
  ceforge_ebs_autoscale || ceforge_fail ebs-autoscale "amazon-ebs-autoscale could not be installed (see ` + AutoscaleLog + `); Docker's data root stays on the boot volume and does not grow"
fi
if [ -n "$CEFORGE_EFS_ID" ]; then
  ceforge_efs || { ceforge_fail efs "EFS $CEFORGE_EFS_ID could not be mounted at $CEFORGE_EFS_MOUNT"; CEFORGE_FATAL=1; }
fi
if [ -n "$CEFORGE_FSX_DNS" ]; then
  ceforge_fsx || { ceforge_fail fsx "FSx $CEFORGE_FSX_DNS could not be mounted at $CEFORGE_FSX_MOUNT"; CEFORGE_FATAL=1; }
fi
if [ "$CEFORGE_DOCKER_STOPPED" = 1 ]; then
  systemctl start docker || ceforge_fail docker "Docker did not start again"
fi

if [ ${#CEFORGE_FAILED[@]} -eq 0 ]; then
  echo "ceforge: host setup done"
  exit 0
fi
CEFORGE_FAILED_STEPS=$(IFS=/; echo "${CEFORGE_FAILED[*]}")
# Visible from outside the host: the reconciler reads this tag.
CEFORGE_IMDS_TOKEN=$(curl -sS -X PUT http://169.254.169.254/latest/api/token -H 'X-aws-ec2-metadata-token-ttl-seconds: 300')
CEFORGE_INSTANCE=$(curl -sS -H "X-aws-ec2-metadata-token: $CEFORGE_IMDS_TOKEN" http://169.254.169.254/latest/meta-data/instance-id)
command -v aws >/dev/null 2>&1 || ceforge_install awscli-2
aws ec2 create-tags --region "$CEFORGE_REGION" --resources "$CEFORGE_INSTANCE" \
  --tags "Key=` + SetupTag + `,Value=failed:$CEFORGE_FAILED_STEPS" || echo "ceforge: could not tag the instance"
if [ "$CEFORGE_FATAL" = 1 ]; then
  # Tasks would write to an empty directory instead of the shared file
  # system: this host never joins the cluster.
  echo "ceforge: a shared file system is missing: the ECS agent is disabled on this host"
  systemctl mask --now ecs
fi
echo "ceforge: host setup finished with failures: $CEFORGE_FAILED_STEPS"
exit 1
`
