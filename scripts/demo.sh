#!/usr/bin/env bash
# The main job on the bundled DEMO ONLY keys: a commune issues a credential for an example
# citizen, writes its QR as a PNG, then a checkpoint verifies that PNG offline against the
# province trust list, with the holder check against the citizen's (synthetic) CCCD card QR.
set -euo pipefail
cd "$(dirname "$0")/.."
VAXQR=${VAXQR:-.venv/bin/vaxqr}
OUT=${OUT:-demo-out}
KEYS=keys/examples
mkdir -p "$OUT"

echo "== 1. commune UBND xã Dương Tơ issues a credential (DEMO ONLY key) =="
"$VAXQR" issue --signer "$KEYS/communes/31078" --password-file "$KEYS/password.txt" \
  --name "Nguyễn Thị Ánh Hồng" --sex "Nữ" --dob 17/05/1990 --id 091190012345 \
  --vaccine pfizer --dose 2/2 --date 2021-10-01 --out "$OUT/credential.png" --force

echo "== 2. checkpoint verifies the PNG against the province trust list and the CCCD card =="
"$VAXQR" verify "$OUT/credential.png" \
  --trust "$KEYS/ca/ca.crt" --trust "$KEYS/trustlist.json" --state "$OUT/trust-state.json" \
  --id-card "091190012345||NGUYỄN THỊ ÁNH HỒNG|17051990|Nữ|Phường Vĩnh Thanh Vân, Rạch Giá, Kiên Giang|01122021"
