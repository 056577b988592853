#!/bin/bash
# SPDX-License-Identifier: MIT
#
# The cost of dirty logging (live migration) in vblkd: vblkperf with the
# client acting as a migrating frontend (--dirty-log: a log, LOG_ALL; vblkd
# marks every page it writes) and without. See bench/onoff.sh.
#   bench/dirty-log.sh [BUILD_DIR] [REPEAT] [RUNTIME_S]
exec "$(dirname "$0")/onoff.sh" --dirty-log "" "$@"
