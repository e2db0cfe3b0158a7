package price

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// scripts/price-table.sh rebuilds the table from the Price List API: run
// against a stub `aws` that answers as pricing:GetProducts does, it
// writes a table Parse accepts, dated today, with the prices it was given.
func TestRefreshScript(t *testing.T) {
	dir := t.TempDir()
	stub := `#!/bin/bash
[ "$1 $2" = "pricing get-products" ] || exit 2
it=""; region=""
for a in "$@"; do
  case "$a" in
  *Field=instanceType,Value=*) it="${a##*Value=}" ;;
  *Field=regionCode,Value=*) region="${a##*Value=}" ;;
  esac
done
price=0.1
[ "$region" = us-east-1 ] || price=0.15
prod="{\"product\":{\"attributes\":{\"instanceType\":\"$it\",\"vcpu\":\"2\",\"memory\":\"8 GiB\"}},\"terms\":{\"OnDemand\":{\"X.Y\":{\"priceDimensions\":{\"X.Y.Z\":{\"unit\":\"Hrs\",\"pricePerUnit\":{\"USD\":\"$price\"}}}}}}}"
printf '{"PriceList":["%s"]}\n' "${prod//\"/\\\"}"
`
	require.NoError(t, os.WriteFile(filepath.Join(dir, "aws"), []byte(stub), 0o755))
	table := filepath.Join(dir, "table.json")
	require.NoError(t, os.WriteFile(table, tableJSON, 0o644))
	cmd := exec.Command("bash", "../../scripts/price-table.sh")
	cmd.Env = append(os.Environ(), "PATH="+dir+":"+os.Getenv("PATH"), "PRICE_TABLE="+table)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))
	b, err := os.ReadFile(table)
	require.NoError(t, err)
	got, err := Parse(b)
	require.NoError(t, err)
	require.Equal(t, time.Now().UTC().Format(time.DateOnly), got.Date)
	require.Contains(t, got.Source, "Price List API")
	require.Equal(t, 0.1, got.Families["m6i"].USDPerHour)
	require.Equal(t, 1.5, got.Regions["eu-west-1"])
	require.Equal(t, 1.0, got.Regions["us-east-1"])
	require.Equal(t, Default.SpotFactor, got.SpotFactor, "Spot has no list price: kept")
}
