// Package price is ceforge's EC2 and Fargate price table and the cost of
// tasks and heads computed from it. The table (table.json) is kept in the
// repository with its date and source; scripts/price-table.sh rebuilds it
// from the AWS Price List API.
package price

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

//go:embed table.json
var tableJSON []byte

// Family prices one instance family at its base size; other sizes scale
// linearly (EC2's list prices within a family do, GPU families excepted,
// which the table lists per instance).
type Family struct {
	Base       string  `json:"base"`
	Vcpus      float64 `json:"vcpus"`
	MemoryGiB  float64 `json:"memoryGiB"`
	USDPerHour float64 `json:"usdPerHour"`
}

// Instance is one instance type's size and us-east-1 on-demand price.
type Instance struct {
	Vcpus      float64 `json:"vcpus"`
	MemoryGiB  float64 `json:"memoryGiB"`
	USDPerHour float64 `json:"usdPerHour"`
}

// Fargate prices Fargate tasks per vCPU-hour and GiB-hour.
type Fargate struct {
	USDPerVcpuHour      float64 `json:"usdPerVcpuHour"`
	USDPerGiBHour       float64 `json:"usdPerGiBHour"`
	Arm64USDPerVcpuHour float64 `json:"arm64UsdPerVcpuHour"`
	Arm64USDPerGiBHour  float64 `json:"arm64UsdPerGiBHour"`
}

// Table is the price table.
type Table struct {
	Date       string              `json:"date"`
	Source     string              `json:"source"`
	Currency   string              `json:"currency"`
	SpotFactor float64             `json:"spotFactor"`
	Regions    map[string]float64  `json:"regions"`
	Families   map[string]Family   `json:"families"`
	Instances  map[string]Instance `json:"instances"`
	Fargate    Fargate             `json:"fargate"`
}

// Default is the table kept in the repository.
var Default = mustParse(tableJSON)

func mustParse(b []byte) *Table {
	t, err := Parse(b)
	if err != nil {
		panic("price: embedded table: " + err.Error())
	}
	return t
}

// Parse reads and checks a table.
func Parse(b []byte) (*Table, error) {
	var t Table
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("parse price table: %w", err)
	}
	if _, err := time.Parse(time.DateOnly, t.Date); err != nil {
		return nil, fmt.Errorf("price table date %q: %w", t.Date, err)
	}
	if t.Source == "" || t.Currency != "USD" || t.SpotFactor <= 0 || t.SpotFactor > 1 || len(t.Regions) == 0 {
		return nil, fmt.Errorf("price table: source, currency USD, spotFactor in (0,1] and regions are required")
	}
	for name, f := range t.Families {
		if sizeFactor(f.Base) <= 0 || f.Vcpus <= 0 || f.MemoryGiB <= 0 || f.USDPerHour <= 0 {
			return nil, fmt.Errorf("price table: family %s is incomplete", name)
		}
	}
	return &t, nil
}

var sizeRE = regexp.MustCompile(`^(\d+)?xlarge$`)

// sizeFactor is a size's capacity relative to "large" (0 when unknown).
func sizeFactor(size string) float64 {
	switch size {
	case "medium":
		return 0.5
	case "large":
		return 1
	}
	m := sizeRE.FindStringSubmatch(size)
	if m == nil {
		return 0
	}
	n := 1
	if m[1] != "" {
		n, _ = strconv.Atoi(m[1])
	}
	return float64(2 * n)
}

// Instance returns an instance type's size and hourly on-demand price in a
// region; false when the type or the region is not in the table.
func (t *Table) Instance(region, instanceType string) (Instance, bool) {
	factor, ok := t.Regions[region]
	if !ok {
		return Instance{}, false
	}
	if in, ok := t.Instances[instanceType]; ok {
		in.USDPerHour *= factor
		return in, true
	}
	family, size, ok := strings.Cut(instanceType, ".")
	if !ok {
		return Instance{}, false
	}
	f, ok := t.Families[family]
	if !ok {
		return Instance{}, false
	}
	s := sizeFactor(size)
	if s == 0 {
		return Instance{}, false
	}
	s /= sizeFactor(f.Base)
	return Instance{Vcpus: f.Vcpus * s, MemoryGiB: f.MemoryGiB * s, USDPerHour: f.USDPerHour * s * factor}, true
}

// Hourly is an instance's price per hour on-demand or on Spot.
func (t *Table) Hourly(region, instanceType string, spot bool) (float64, Instance, bool) {
	in, ok := t.Instance(region, instanceType)
	if !ok {
		return 0, in, false
	}
	p := in.USDPerHour
	if spot {
		p *= t.SpotFactor
	}
	return p, in, true
}

// Usage is what a task held and for how long.
type Usage struct {
	Cpus        float64 // requested cpus (1 when unknown)
	MemoryBytes int64   // requested memory (0 when unknown)
	Realtime    time.Duration
}

// Share is the part of an instance a task holds: the larger of its share
// of the cpus and of the memory (what it keeps others from using), at most
// the whole instance.
func Share(in Instance, u Usage) float64 {
	cpus := u.Cpus
	if cpus <= 0 {
		cpus = 1
	}
	share := cpus / in.Vcpus
	if u.MemoryBytes > 0 {
		share = max(share, float64(u.MemoryBytes)/(in.MemoryGiB*(1<<30)))
	}
	return min(share, 1)
}

// TaskCost is a task's cost in USD: its share of the instance by cpus and
// memory, times its realtime, at the instance's hourly price. False when
// the instance type or region is not in the table.
func (t *Table) TaskCost(region, instanceType string, spot bool, u Usage) (float64, bool) {
	hourly, in, ok := t.Hourly(region, instanceType, spot)
	if !ok {
		return 0, false
	}
	return hourly * Share(in, u) * u.Realtime.Hours(), true
}

// FargateCost is the cost of a Fargate task of cpus and memoryMiB for d.
// Regions other than us-east-1 use the table's region factor.
func (t *Table) FargateCost(region string, cpus, memoryMiB float64, arm64 bool, d time.Duration) (float64, bool) {
	factor, ok := t.Regions[region]
	if !ok {
		return 0, false
	}
	vcpu, gib := t.Fargate.USDPerVcpuHour, t.Fargate.USDPerGiBHour
	if arm64 {
		vcpu, gib = t.Fargate.Arm64USDPerVcpuHour, t.Fargate.Arm64USDPerGiBHour
	}
	return (cpus*vcpu + memoryMiB/1024*gib) * factor * d.Hours(), true
}

var zoneRE = regexp.MustCompile(`^([a-z]{2}(?:-gov)?-[a-z]+-\d+)`)

// RegionOfZone returns the region of an Availability Zone or Local Zone
// name ("eu-west-1b" -> "eu-west-1"), or "" for anything else (zone ids).
func RegionOfZone(zone string) string {
	if m := zoneRE.FindStringSubmatch(zone); m != nil {
		return m[1]
	}
	return ""
}
