#!/bin/bash
# Builds .gpudata/, the copy of ../shared/data that a device call carries (`carry: [".gpudata"]`),
# for the named quality suites (default: the three that fit one carry together) and, named CBSD68,
# the settings-choice set's first 16 images (~4 MB), and says its size:
#   bash benchmarks/gpudata.sh [SUITE ...]     e.g.  bash benchmarks/gpudata.sh sr4 CBSD68
# The device tool carries at most 64 MiB: denoise25 + denoise50 + inpaint50 fit (~53 MB), sr4 (~41 MB)
# and sr8 (~38 MB) each need a call of their own. Delete .gpudata/ afterwards.
set -eu
data="${DIP_DATA:-$(dirname "$PWD")/shared/data}"
suites="${*:-denoise25 denoise50 inpaint50}"
rm -rf .gpudata
if [[ " $suites " == *" CBSD68 "* ]]; then
  mkdir -p .gpudata/CBSD68
  ls "$data/CBSD68"/*.png | sort | head -16 | xargs -I{} cp {} .gpudata/CBSD68/
  suites="${suites//CBSD68/}"
fi
for folder in $(PYTHONPATH=src python3 -c "
import sys; from dip.bench.quality import SUITES
print(' '.join(f for s in sys.argv[1:] for f in SUITES[s].folders))" $suites); do
  mkdir -p ".gpudata/paper/$folder"
  cp "$data/paper/$folder"/*.png ".gpudata/paper/$folder/"
done
du -sh .gpudata
