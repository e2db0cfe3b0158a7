#!/usr/bin/env bash
# Rebuild internal/price/table.json from the AWS Price List API (the
# `aws pricing get-products` call; needs AWS credentials and the AWS CLI).
# It keeps the table's families, instances and regions, and refreshes:
#   - each family's on-demand Linux price, vCPUs and memory at its base size in us-east-1;
#   - each listed instance (GPU families) the same way;
#   - each region's factor: m6i.large there divided by m6i.large in us-east-1;
#   - the date and the source.
# Spot has no list price: spotFactor and the Fargate prices are kept as
# they are (edit them by hand from the Spot Instance Advisor and the
# Fargate pricing page). Review the diff, then commit it.
set -euo pipefail
cd "$(dirname "$0")/.."
CEFORGE_AWS_CLI=$(command -v aws) || { echo "price-table: the AWS CLI is required" >&2; exit 1; }
export CEFORGE_AWS_CLI # resolved here: a Python launcher may put its own directories first on PATH
exec python3 - "${PRICE_TABLE:-internal/price/table.json}" <<'PY'
import datetime, json, os, subprocess, sys

path = sys.argv[1]
table = json.load(open(path))

def product(region, instance_type):
    out = subprocess.run(
        [os.environ["CEFORGE_AWS_CLI"], "pricing", "get-products", "--region", "us-east-1", "--service-code", "AmazonEC2", "--output", "json",
         "--filters",
         f"Type=TERM_MATCH,Field=instanceType,Value={instance_type}",
         f"Type=TERM_MATCH,Field=regionCode,Value={region}",
         "Type=TERM_MATCH,Field=operatingSystem,Value=Linux",
         "Type=TERM_MATCH,Field=tenancy,Value=Shared",
         "Type=TERM_MATCH,Field=preInstalledSw,Value=NA",
         "Type=TERM_MATCH,Field=capacitystatus,Value=Used"],
        check=True, capture_output=True, text=True).stdout
    items = [json.loads(p) for p in json.loads(out)["PriceList"]]
    if not items:
        raise SystemExit(f"price-table: no price for {instance_type} in {region}")
    item = items[0]
    attrs = item["product"]["attributes"]
    dims = [d for t in item["terms"]["OnDemand"].values() for d in t["priceDimensions"].values()]
    usd = float(dims[0]["pricePerUnit"]["USD"])
    mem = float(attrs["memory"].split()[0].replace(",", ""))
    return {"vcpus": int(attrs["vcpu"]), "memoryGiB": mem, "usdPerHour": usd}

for name, fam in table["families"].items():
    p = product("us-east-1", f"{name}.{fam['base']}")
    fam.update(p)
for name in table["instances"]:
    table["instances"][name].update(product("us-east-1", name))
base = product("us-east-1", "m6i.large")["usdPerHour"]
for region in table["regions"]:
    table["regions"][region] = round(product(region, "m6i.large")["usdPerHour"] / base, 3)
table["date"] = datetime.date.today().isoformat()
table["source"] = ("AWS Price List API (pricing:GetProducts, AmazonEC2, Linux, shared tenancy, on-demand), read by "
                   "scripts/price-table.sh on " + table["date"] + ": families at their base size and listed instances in us-east-1; "
                   "regions as m6i.large there over us-east-1. Spot: on-demand times spotFactor (kept). Fargate: kept.")
with open(path, "w") as f:
    json.dump(table, f, indent=2)
    f.write("\n")
print(f"price-table: wrote {path} ({len(table['families'])} families, {len(table['instances'])} instances, {len(table['regions'])} regions)")
PY
