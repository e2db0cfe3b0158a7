// Package batchce is the aws-batch platform: the compute-environment
// Provisioner (option rules and defaults, plan, the forge/manual lifecycle
// step machine), the run Launcher (one SubmitJob per run, cancel,
// reconcile) and the Batch Job State Change event parser and sink.
package batchce

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/ceforge/ceforge/internal/apierr"
	"github.com/ceforge/ceforge/internal/computeenv"
	"github.com/ceforge/ceforge/internal/forge"
	"github.com/ceforge/ceforge/internal/forge/hostinit"
)

// Provisioning models and allocation strategies.
const (
	ModelSpot = "SPOT"
	ModelEC2  = "EC2"

	AllocBestFit            = "BEST_FIT"
	AllocBestFitProgressive = "BEST_FIT_PROGRESSIVE"
	AllocSpotCapacity       = "SPOT_CAPACITY_OPTIMIZED"
	AllocSpotPriceCapacity  = "SPOT_PRICE_CAPACITY_OPTIMIZED"
)

// Limits of forge options.
const (
	MaxCpusLimit        = 100000
	WarnInstanceTypes   = 20 // AWS Batch drops the largest types beyond this
	MaxEcsConfigBytes   = 8 << 10
	MinBootDiskGiB      = 30
	MaxBootDiskGiB      = 16384
	MaxHeadCpus         = 192
	MinHeadMemoryMb     = 512
	MaxHeadMemoryMb     = 1 << 20
	FsxScratchBaseGiB   = 1200
	FsxScratchStepGiB   = 2400
	MaxFsxGiB           = 524400
	MaxEbsBlockSizeGiB  = 16384
	MinBidPercentage    = 1
	MaxBidPercentage    = 100
	MaxFargateHeadCpus  = 16
	DefaultFargateLimit = 30720
)

var (
	instanceTypeRE = regexp.MustCompile(`^[a-z][a-z0-9-]*[0-9][a-z0-9-]*(\.[0-9a-z]+)?$`)
	amiRE          = regexp.MustCompile(`^ami-[0-9a-f]{8,17}$`)
	subnetRE       = regexp.MustCompile(`^subnet-[0-9a-f]{8,17}$`)
	sgRE           = regexp.MustCompile(`^sg-[0-9a-f]{8,17}$`)
	vpcRE          = regexp.MustCompile(`^vpc-[0-9a-f]{8,17}$`)
	efsIDRE        = regexp.MustCompile(`^fs-[0-9a-f]{8,40}$`)
	fsxDNSRE       = regexp.MustCompile(`^fs-[0-9a-f]{8,17}\.fsx\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$`)
	roleARNRE      = regexp.MustCompile(`^arn:aws[a-z-]*:iam::[0-9]{12}:role/[\w+=,.@/-]+$`) // lengths are checked in code: bounded repeats blow up the compiled program
	logGroupRE     = regexp.MustCompile(`^[\w/.#-]+$`)
	keyPairRE      = regexp.MustCompile(`^[\x20-\x7e]+$`)
	queueRE        = regexp.MustCompile(`^([A-Za-z0-9][A-Za-z0-9_-]*|arn:aws[a-z-]*:batch:[a-z0-9-]+:[0-9]{12}:job-queue/[A-Za-z0-9][A-Za-z0-9_-]*)$`)
	ecsKeyRE       = regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`)
	absPathRE      = regexp.MustCompile(`^/[A-Za-z0-9._/-]*$`)
	// nvmeFamilyRE: families with instance-store NVMe disks ("d" variants,
	// storage-optimised i*/im*/is* and the like).
	nvmeFamilyRE = regexp.MustCompile(`^([a-z]+[0-9]+[a-z-]*d[a-z]*|i[0-9][a-z]*|im[0-9][a-z]*|is[0-9][a-z]*|z1d|x2i[a-z]*d[a-z]*)$`)
)

// Default instance types by architecture and storage.
var (
	defaultTypesX86        = []string{"optimal"}
	defaultTypesARM        = []string{"m6g", "c6g", "r6g"}
	defaultTypesNVMeX86    = []string{"c6id", "m6id", "r6id"}
	defaultTypesNVMeARM    = []string{"c6gd", "m6gd", "r6gd"}
	defaultTypesGPU        = []string{"g4dn", "g5"}
	nonNVMeOptimalFamilies = []string{"c4", "m4", "r4"}
)

// check validates the aws-batch options of ce (no AWS calls), fills the
// defaults and returns warnings. Errors name the offending field.
func check(ce *computeenv.ComputeEnv) ([]string, error) {
	b := ce.Batch
	if b == nil {
		return nil, apierr.Missing("batch")
	}
	if ce.Cloud != nil {
		return nil, apierr.Invalid("cloud", "the cloud block goes with platform %q", computeenv.PlatformCloud)
	}
	var warn []string
	if b.Fusion2Enabled && !b.WaveEnabled {
		return nil, apierr.Invalid("batch.fusion2Enabled", "Fusion v2 requires Wave containers: set batch.waveEnabled")
	}
	if b.FusionSnapshots && !b.Fusion2Enabled {
		return nil, apierr.Invalid("batch.fusionSnapshots", "Fusion snapshots require Fusion v2: set batch.fusion2Enabled")
	}
	for _, r := range []struct{ field, arn string }{{"batch.headJobRole", b.HeadJobRole}, {"batch.computeJobRole", b.ComputeJobRole}, {"batch.executionRole", b.ExecutionRole}} {
		if r.arn != "" && (len(r.arn) > 2048 || !roleARNRE.MatchString(r.arn)) {
			return nil, apierr.Invalid(r.field, "%s must be an IAM role ARN (arn:aws:iam::<account>:role/<name>)", r.field)
		}
	}
	if b.CliPath != "" && (!absPathRE.MatchString(b.CliPath) || strings.Contains(b.CliPath, "..")) {
		return nil, apierr.Invalid("batch.cliPath", "batch.cliPath must be an absolute path to the aws executable")
	}
	if b.LogGroup != "" && (len(b.LogGroup) > 512 || !logGroupRE.MatchString(b.LogGroup)) {
		return nil, apierr.Invalid("batch.logGroup", "%q is not a CloudWatch log group name", b.LogGroup)
	}
	// The functions read run logs from these groups only (their IAM
	// policy): a head writing elsewhere could never be followed.
	if b.LogGroup != "" && !strings.HasPrefix(b.LogGroup, forge.DefaultBatchLogGroup) && !strings.HasPrefix(b.LogGroup, "/ceforge/") {
		return nil, apierr.Invalid("batch.logGroup", "batch.logGroup must start with %s or /ceforge/: ceforge reads run logs from those log groups only", forge.DefaultBatchLogGroup)
	}
	if b.HeadJobCpus < 0 || b.HeadJobCpus > MaxHeadCpus {
		return nil, apierr.Invalid("batch.headJobCpus", "batch.headJobCpus must be between 1 and %d", MaxHeadCpus)
	}
	if b.HeadJobMemoryMb != 0 && (b.HeadJobMemoryMb < MinHeadMemoryMb || b.HeadJobMemoryMb > MaxHeadMemoryMb) {
		return nil, apierr.Invalid("batch.headJobMemoryMb", "batch.headJobMemoryMb must be between %d and %d", MinHeadMemoryMb, MaxHeadMemoryMb)
	}
	if b.HeadJobMemoryMb == 0 {
		b.HeadJobMemoryMb = forge.DefaultHeadMemoryMb
	}
	if b.HeadJobCpus == 0 {
		b.HeadJobCpus = forge.DefaultHeadCpus
	}
	if b.Forge == nil {
		ce.ConfigMode = computeenv.ModeManual
		return warn, checkManual(ce)
	}
	ce.ConfigMode = computeenv.ModeForge
	w, err := checkForge(ce)
	return append(warn, w...), err
}

func checkManual(ce *computeenv.ComputeEnv) error {
	b := ce.Batch
	if b.HeadQueue == "" {
		return apierr.Missing("batch.headQueue")
	}
	if b.ComputeQueue == "" {
		return apierr.Missing("batch.computeQueue")
	}
	for field, q := range map[string]string{"batch.headQueue": b.HeadQueue, "batch.computeQueue": b.ComputeQueue} {
		if len(queueName(q)) > 128 || !queueRE.MatchString(q) {
			return apierr.Invalid(field, "%q is not a Batch job queue name or ARN", q)
		}
	}
	if m := b.WorkDirMount; m != "" && (!absPathRE.MatchString(m) || hasDotSegment(m) || m == "/") {
		return apierr.Invalid("batch.workDirMount", "batch.workDirMount must be an absolute path (where your Batch hosts mount the shared file system), without '.' or '..' segments")
	}
	if !strings.HasPrefix(ce.WorkDir, "s3://") {
		if b.WorkDirMount == "" {
			return apierr.Invalid("batch.workDirMount", "a workDir that is not S3 needs batch.workDirMount: the path where your Batch hosts mount the file system holding it")
		}
		if !underPath(ce.WorkDir, b.WorkDirMount) {
			return apierr.Invalid("workDir", "workDir must be under batch.workDirMount (%s)", b.WorkDirMount)
		}
		if b.Fusion2Enabled {
			return apierr.Invalid("batch.fusion2Enabled", "Fusion v2 needs an S3 work directory")
		}
	}
	return nil
}

func hasDotSegment(p string) bool {
	for _, seg := range strings.Split(p, "/") {
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}

func checkForge(ce *computeenv.ComputeEnv) ([]string, error) {
	b, f := ce.Batch, ce.Batch.Forge
	var warn []string
	if b.WorkDirMount != "" {
		return nil, apierr.Invalid("batch.workDirMount", "batch.workDirMount goes with manual mode; forge mode mounts the file systems it is given at batch.forge.efsMount and batch.forge.fsxMount")
	}
	if b.HeadQueue != "" {
		return nil, apierr.Invalid("batch.headQueue", "batch.headQueue goes with manual mode; forge mode creates the queues (remove batch.forge to use existing queues)")
	}
	if b.ComputeQueue != "" {
		return nil, apierr.Invalid("batch.computeQueue", "batch.computeQueue goes with manual mode; forge mode creates the queues (remove batch.forge to use existing queues)")
	}
	switch f.Type {
	case "":
		return nil, apierr.Missing("batch.forge.type")
	case ModelSpot, ModelEC2:
	default:
		return nil, apierr.Invalid("batch.forge.type", "batch.forge.type must be %q or %q", ModelSpot, ModelEC2)
	}
	if f.MaxCpus <= 0 {
		return nil, apierr.Missing("batch.forge.maxCpus")
	}
	if f.MaxCpus > MaxCpusLimit {
		return nil, apierr.Invalid("batch.forge.maxCpus", "batch.forge.maxCpus must be at most %d", MaxCpusLimit)
	}
	if f.MinCpus < 0 || f.MinCpus > f.MaxCpus {
		return nil, apierr.Invalid("batch.forge.minCpus", "batch.forge.minCpus must be between 0 and batch.forge.maxCpus (%d)", f.MaxCpus)
	}
	if f.MinCpus > 0 {
		warn = append(warn, fmt.Sprintf("batch.forge.minCpus is %d: instances for %d CPUs stay up, and cost money, even when no pipeline runs", f.MinCpus, f.MinCpus))
	}

	// Feature combinations.
	if f.FargateHeadEnabled {
		if !b.Fusion2Enabled {
			return nil, apierr.Invalid("batch.forge.fargateHeadEnabled", "a Fargate head job requires Fusion v2: set batch.fusion2Enabled (and batch.waveEnabled)")
		}
		if f.Type != ModelSpot {
			return nil, apierr.Invalid("batch.forge.fargateHeadEnabled", "a Fargate head job requires the SPOT provisioning model (batch.forge.type)")
		}
		if f.EfsID != "" || f.EfsCreate || f.FsxName != "" || f.FsxSize > 0 {
			return nil, apierr.Invalid("batch.forge.fargateHeadEnabled", "a Fargate head job cannot mount EFS or FSx file systems: remove the EFS/FSx options or disable Fargate")
		}
		if f.ImageID != "" {
			warn = append(warn, "batch.forge.imageId applies to the compute jobs only: the Fargate head job does not use a custom AMI")
		}
	}
	if f.Arm64Enabled {
		switch {
		case !f.FargateHeadEnabled:
			return nil, apierr.Invalid("batch.forge.arm64Enabled", "Graviton (arm64) requires a Fargate head job: set batch.forge.fargateHeadEnabled")
		case !b.WaveEnabled:
			return nil, apierr.Invalid("batch.forge.arm64Enabled", "Graviton (arm64) requires Wave containers: set batch.waveEnabled")
		case !b.Fusion2Enabled:
			return nil, apierr.Invalid("batch.forge.arm64Enabled", "Graviton (arm64) requires Fusion v2: set batch.fusion2Enabled")
		case f.GpuEnabled:
			return nil, apierr.Invalid("batch.forge.arm64Enabled", "Graviton (arm64) cannot be combined with GPUs (batch.forge.gpuEnabled)")
		}
	}
	if f.FastStorage && !b.Fusion2Enabled {
		return nil, apierr.Invalid("batch.forge.fastStorage", "fast instance storage requires Fusion v2: set batch.fusion2Enabled")
	}
	if f.EbsAutoScale && b.Fusion2Enabled {
		return nil, apierr.Invalid("batch.forge.ebsAutoScale", "EBS auto-scale (deprecated) is not compatible with Fusion v2: disable one of them")
	}
	if f.EbsBlockSize != 0 {
		if !f.EbsAutoScale {
			return nil, apierr.Invalid("batch.forge.ebsBlockSize", "batch.forge.ebsBlockSize goes with batch.forge.ebsAutoScale")
		}
		if f.EbsBlockSize < 1 || f.EbsBlockSize > MaxEbsBlockSizeGiB {
			return nil, apierr.Invalid("batch.forge.ebsBlockSize", "batch.forge.ebsBlockSize must be between 1 and %d GiB", MaxEbsBlockSizeGiB)
		}
	}
	if f.EbsAutoScale && f.EbsBlockSize == 0 {
		f.EbsBlockSize = forge.DefaultEbsBlockGiB
	}
	if f.EbsAutoScale {
		warn = append(warn, "batch.forge.ebsAutoScale: compute hosts download amazon-ebs-autoscale (archived by AWS in 2024; ceforge pins its last commit) from GitHub at boot, so they need outbound HTTPS. "+
			"A host that cannot install it keeps Docker's data on its boot volume, says why in "+hostinit.Log+", tags itself "+hostinit.SetupTag+", and this compute environment then names it in its warnings")
	}

	// Instance types and allocation.
	if err := computeenv.CheckList("batch.forge.instanceTypes", len(f.InstanceTypes)); err != nil {
		return nil, err
	}
	for i, t := range f.InstanceTypes {
		if t != "optimal" && !instanceTypeRE.MatchString(t) {
			return nil, apierr.Invalid(fmt.Sprintf("batch.forge.instanceTypes[%d]", i), "%q is not an EC2 instance type or family", t)
		}
	}
	if len(f.InstanceTypes) > WarnInstanceTypes {
		warn = append(warn, fmt.Sprintf("batch.forge.instanceTypes lists %d types: AWS Batch uses at most %d and drops the largest ones", len(f.InstanceTypes), WarnInstanceTypes))
	}
	if f.FastStorage {
		for i, t := range f.InstanceTypes {
			fam, _, _ := strings.Cut(t, ".")
			field := fmt.Sprintf("batch.forge.instanceTypes[%d]", i)
			switch {
			case t == "optimal" || slices.Contains(nonNVMeOptimalFamilies, fam):
				return nil, apierr.Invalid(field, "fast instance storage needs NVMe instance types; %q (the 'optimal' c4/m4/r4 families) has none: list NVMe types such as c6id or m6id, or leave instanceTypes empty", t)
			case !nvmeFamilyRE.MatchString(fam):
				return nil, apierr.Invalid(field, "fast instance storage needs NVMe instance-store types; %q has no NVMe disks (use e.g. c6id, m6id, r6id, c6gd)", t)
			}
		}
	}
	if f.Arm64Enabled {
		for i, t := range f.InstanceTypes {
			if t == "optimal" {
				return nil, apierr.Invalid(fmt.Sprintf("batch.forge.instanceTypes[%d]", i), "'optimal' is x86 only; list Graviton types (e.g. m6g, c7g) or leave instanceTypes empty")
			}
		}
	}
	if len(f.InstanceTypes) == 0 {
		switch {
		case f.FastStorage && f.Arm64Enabled:
			f.InstanceTypes = slices.Clone(defaultTypesNVMeARM)
		case f.FastStorage:
			f.InstanceTypes = slices.Clone(defaultTypesNVMeX86)
		case f.Arm64Enabled:
			f.InstanceTypes = slices.Clone(defaultTypesARM)
		case f.GpuEnabled:
			f.InstanceTypes = slices.Clone(defaultTypesGPU)
		default:
			f.InstanceTypes = slices.Clone(defaultTypesX86)
		}
	}
	switch {
	case f.AllocStrategy == "" && f.Type == ModelSpot:
		f.AllocStrategy = AllocSpotPriceCapacity
	case f.AllocStrategy == "":
		f.AllocStrategy = AllocBestFitProgressive
	case f.Type == ModelEC2 && f.AllocStrategy != AllocBestFit && f.AllocStrategy != AllocBestFitProgressive:
		return nil, apierr.Invalid("batch.forge.allocStrategy", "with type EC2, batch.forge.allocStrategy must be %s or %s", AllocBestFit, AllocBestFitProgressive)
	case f.Type == ModelSpot && f.AllocStrategy == AllocBestFit:
		return nil, apierr.Invalid("batch.forge.allocStrategy", "BEST_FIT Spot needs a Spot Fleet role ceforge does not create; use %s, %s or %s", AllocSpotPriceCapacity, AllocSpotCapacity, AllocBestFitProgressive)
	case f.Type == ModelSpot && !slices.Contains([]string{AllocBestFitProgressive, AllocSpotCapacity, AllocSpotPriceCapacity}, f.AllocStrategy):
		return nil, apierr.Invalid("batch.forge.allocStrategy", "with type SPOT, batch.forge.allocStrategy must be %s, %s or %s", AllocSpotPriceCapacity, AllocSpotCapacity, AllocBestFitProgressive)
	}
	if f.BidPercentage != 0 {
		if f.Type != ModelSpot {
			return nil, apierr.Invalid("batch.forge.bidPercentage", "batch.forge.bidPercentage goes with type SPOT")
		}
		if f.BidPercentage < MinBidPercentage || f.BidPercentage > MaxBidPercentage {
			return nil, apierr.Invalid("batch.forge.bidPercentage", "batch.forge.bidPercentage must be between %d and %d (percent of the On-Demand price)", MinBidPercentage, MaxBidPercentage)
		}
	}

	// Machine image, access and disks.
	if f.ImageID != "" && !amiRE.MatchString(f.ImageID) {
		return nil, apierr.Invalid("batch.forge.imageId", "%q is not an AMI id (ami-…)", f.ImageID)
	}
	if f.EC2KeyPair != "" && (len(f.EC2KeyPair) > 255 || !keyPairRE.MatchString(f.EC2KeyPair)) {
		return nil, apierr.Invalid("batch.forge.ec2KeyPair", "batch.forge.ec2KeyPair must be 1-255 printable ASCII characters")
	}
	if f.EbsBootSize != 0 && (f.EbsBootSize < MinBootDiskGiB || f.EbsBootSize > MaxBootDiskGiB) {
		return nil, apierr.Invalid("batch.forge.ebsBootSize", "batch.forge.ebsBootSize must be between %d and %d GiB", MinBootDiskGiB, MaxBootDiskGiB)
	}
	if err := computeenv.CheckText("batch.forge.ecsConfig", f.EcsConfig, MaxEcsConfigBytes); err != nil {
		return nil, err
	}
	for i, line := range strings.Split(strings.TrimSpace(f.EcsConfig), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if k, _, ok := strings.Cut(line, "="); !ok || !ecsKeyRE.MatchString(k) || strings.Contains(line, "CEFORGE_ECS_EOF") {
			return nil, apierr.Invalid("batch.forge.ecsConfig", "line %d of batch.forge.ecsConfig is not KEY=value (ECS agent settings, e.g. ECS_ENABLE_GPU_SUPPORT=true)", i+1)
		}
	}

	// Network.
	if f.VpcID != "" && !vpcRE.MatchString(f.VpcID) {
		return nil, apierr.Invalid("batch.forge.vpcId", "%q is not a VPC id (vpc-…)", f.VpcID)
	}
	for field, list := range map[string][]string{"batch.forge.subnets": f.Subnets, "batch.forge.securityGroups": f.SecurityGroups} {
		if err := computeenv.CheckList(field, len(list)); err != nil {
			return nil, err
		}
	}
	for i, s := range f.Subnets {
		if !subnetRE.MatchString(s) {
			return nil, apierr.Invalid(fmt.Sprintf("batch.forge.subnets[%d]", i), "%q is not a subnet id (subnet-…)", s)
		}
	}
	for i, s := range f.SecurityGroups {
		if !sgRE.MatchString(s) {
			return nil, apierr.Invalid(fmt.Sprintf("batch.forge.securityGroups[%d]", i), "%q is not a security group id (sg-…)", s)
		}
	}

	// Shared file systems and buckets.
	if f.EfsID != "" && f.EfsCreate {
		return nil, apierr.Invalid("batch.forge.efsCreate", "give either batch.forge.efsId (existing) or batch.forge.efsCreate, not both")
	}
	if f.EfsID != "" && !efsIDRE.MatchString(f.EfsID) {
		return nil, apierr.Invalid("batch.forge.efsId", "%q is not an EFS file system id (fs-…)", f.EfsID)
	}
	efs := f.EfsID != "" || f.EfsCreate
	if efs && f.EfsMount == "" {
		f.EfsMount = forge.DefaultEfsMount
	}
	if f.EfsMount != "" && (!efs || !absPathRE.MatchString(f.EfsMount) || strings.Contains(f.EfsMount, "..")) {
		return nil, apierr.Invalid("batch.forge.efsMount", "batch.forge.efsMount must be an absolute path and goes with batch.forge.efsId or batch.forge.efsCreate")
	}
	if f.FsxName != "" && f.FsxSize > 0 {
		return nil, apierr.Invalid("batch.forge.fsxSize", "give either batch.forge.fsxName (existing DNS name) or batch.forge.fsxSize (create), not both")
	}
	if f.FsxName != "" && !fsxDNSRE.MatchString(f.FsxName) {
		return nil, apierr.Invalid("batch.forge.fsxName", "%q is not an FSx for Lustre DNS name (fs-….fsx.<region>.amazonaws.com)", f.FsxName)
	}
	if f.FsxSize < 0 || f.FsxSize > 0 && f.FsxSize != FsxScratchBaseGiB && f.FsxSize%FsxScratchStepGiB != 0 || f.FsxSize > MaxFsxGiB {
		return nil, apierr.Invalid("batch.forge.fsxSize", "batch.forge.fsxSize must be 1200 or a multiple of 2400 GiB (FSx for Lustre scratch)")
	}
	fsx := f.FsxName != "" || f.FsxSize > 0
	if fsx && f.FsxMount == "" {
		f.FsxMount = forge.DefaultFsxMount
	}
	if f.FsxMount != "" && (!fsx || !absPathRE.MatchString(f.FsxMount) || strings.Contains(f.FsxMount, "..")) {
		return nil, apierr.Invalid("batch.forge.fsxMount", "batch.forge.fsxMount must be an absolute path and goes with batch.forge.fsxName or batch.forge.fsxSize")
	}
	if !strings.HasPrefix(ce.WorkDir, "s3://") {
		// The work dir lives on the shared file system.
		if !(efs && underPath(ce.WorkDir, f.EfsMount)) && !(fsx && underPath(ce.WorkDir, f.FsxMount)) {
			return nil, apierr.Invalid("workDir", "a workDir that is not S3 must be under the EFS or FSx mount path (e.g. %s/work)", firstNonEmpty(f.EfsMount, f.FsxMount))
		}
		if b.Fusion2Enabled {
			return nil, apierr.Invalid("batch.fusion2Enabled", "Fusion v2 needs an S3 work directory")
		}
	}
	if err := computeenv.CheckList("batch.forge.allowBuckets", len(f.AllowBuckets)); err != nil {
		return nil, err
	}
	for i, u := range f.AllowBuckets {
		if _, _, err := computeenv.ParseS3URI(fmt.Sprintf("batch.forge.allowBuckets[%d]", i), u); err != nil {
			return nil, err
		}
	}
	if f.DisposeOnDeletion == nil {
		t := true
		f.DisposeOnDeletion = &t
	}
	if f.FargateHeadEnabled {
		if err := checkFargateSize(b.HeadJobCpus, b.HeadJobMemoryMb); err != nil {
			return nil, err
		}
	}
	return warn, nil
}

// checkFargateSize enforces Fargate's vCPU/memory combinations.
func checkFargateSize(cpus, mem int) error {
	type span struct{ min, max, step int }
	sizes := map[int]span{1: {2048, 8192, 1024}, 2: {4096, 16384, 1024}, 4: {8192, 30720, 1024}, 8: {16384, 61440, 4096}, 16: {32768, 122880, 8192}}
	s, ok := sizes[cpus]
	if !ok {
		return apierr.Invalid("batch.headJobCpus", "a Fargate head job takes 1, 2, 4, 8 or 16 vCPUs")
	}
	if mem < s.min || mem > s.max || (mem-s.min)%s.step != 0 {
		return apierr.Invalid("batch.headJobMemoryMb", "with %d vCPU a Fargate head job takes %d-%d MiB in steps of %d", cpus, s.min, s.max, s.step)
	}
	return nil
}

func underPath(p, mount string) bool {
	return mount != "" && (p == mount || strings.HasPrefix(p, strings.TrimSuffix(mount, "/")+"/"))
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return "/mnt/efs"
}

// queueName is the name part of a queue name or ARN.
func queueName(q string) string {
	if i := strings.LastIndex(q, "/"); i >= 0 {
		return q[i+1:]
	}
	return q
}
