#!/bin/bash
# SPDX-License-Identifier: MIT
# Run every libFuzzer target of tests/fuzz for SECONDS (default 60) each.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Builds build-fuzz with clang, -Dfuzz=true, ASan+UBSan and coverage for all
# of src/ (-fsanitize=fuzzer-no-link), then fuzzes each target over a scratch
# copy of its seed corpus and crash regressions (the committed corpus is not
# touched). Fails if any target crashes, leaks, times out or breaks an
# invariant; the reproducer's path is printed (replay it with
# build-fuzz/tests/fuzz/<target> <file>, minimise with -minimize_crash=1,
# then add it under tests/fuzz/regressions/<target>/).
# Environment: FUZZ_BUILD (build dir), FUZZ_ARGS (extra libFuzzer flags).
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:-60}
shift || true
if ! [[ $secs =~ ^[0-9]+$ ]] || ((secs == 0)); then
	echo "usage: $0 [SECONDS_PER_TARGET] [TARGET...]" >&2
	exit 2
fi
all_targets=(fuzz_virtq_split fuzz_virtq_packed fuzz_virtq_indirect fuzz_blk_req fuzz_vhost_msg
	fuzz_mgmt_rpc)
targets=("${@:-${all_targets[@]}}")

scripts/install-deps.sh

build=${FUZZ_BUILD:-build-fuzz}
if [ ! -f "$build/build.ninja" ]; then
	CC=clang meson setup "$build" -Dfuzz=true -Db_sanitize=address,undefined \
		-Db_lundef=false -Dbuildtype=debugoptimized \
		-Dc_args=-fsanitize=fuzzer-no-link -Dc_link_args=-fsanitize=fuzzer-no-link
fi
# Only what fuzzing needs: work in progress elsewhere must not stop it.
ninja -C "$build" "${targets[@]/#/tests/fuzz/}"

# A UBSan report is a crash too; leaks are checked per input.
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:abort_on_error=1:print_stacktrace=1}

out="$build/fuzz-out"
rm -rf "$out"
mkdir -p "$out"
failed=()
for t in "${targets[@]}"; do
	bin="$build/tests/fuzz/$t"
	if [ ! -x "$bin" ]; then
		echo "fuzz: $bin missing (is $build configured with CC=clang -Dfuzz=true?)" >&2
		exit 1
	fi
	work="$out/$t"
	mkdir -p "$work/corpus" "$work/artifacts"
	cp tests/fuzz/corpus/"$t"/* "$work/corpus/"
	cp tests/fuzz/regressions/"$t"/* "$work/corpus/" 2>/dev/null || true
	rm -f "$work/corpus/README"*
	echo "fuzz: $t for ${secs}s (log: $work/log)"
	rc=0
	# shellcheck disable=SC2086 # FUZZ_ARGS is a list of flags
	"$bin" -max_total_time="$secs" -timeout=20 -rss_limit_mb=4096 -max_len=65536 \
		-print_final_stats=1 -artifact_prefix="$work/artifacts/" ${FUZZ_ARGS:-} \
		"$work/corpus" >"$work/log" 2>&1 || rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -1)
	last=$(grep -E '^#[0-9]+' "$work/log" | tail -1 || true)
	cov=$(sed -n 's/.* cov: \([0-9]*\) ft: \([0-9]*\).*/edges \1, features \2/p' <<<"$last")
	rate=$(sed -n 's/.*exec\/s: \([0-9]*\).*/\1/p' <<<"$last")
	echo "fuzz: $t: ${execs:-?} runs, ${rate:-?} exec/s, ${cov:-coverage ?}, exit $rc"
	crashes=$(find "$work/artifacts" -type f | sort)
	if ((rc != 0)) || [ -n "$crashes" ]; then
		failed+=("$t")
		grep -E 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error|FUZZ INVARIANT|SUMMARY' \
			"$work/log" | head -5 | sed 's/^/fuzz:   /'
		for c in $crashes; do
			echo "fuzz:   reproducer: $c"
		done
	fi
done

if ((${#failed[@]})); then
	echo "fuzz: FAILED: ${failed[*]}"
	exit 1
fi
echo "fuzz: all ${#targets[@]} targets ran ${secs}s without a finding"
