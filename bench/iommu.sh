#!/bin/bash
# SPDX-License-Identifier: MIT
#
# The cost of VIRTIO_F_ACCESS_PLATFORM in vblkd: vblkperf with the client
# acting as a frontend behind an IOMMU (--access-platform: IOVAs, the
# server's IOTLB filled up front in 2 MiB entries, so the translation
# cache is hot) and without, against one vblkd --iommu. See bench/onoff.sh.
#   bench/iommu.sh [BUILD_DIR] [REPEAT] [RUNTIME_S]
exec "$(dirname "$0")/onoff.sh" --access-platform "--iommu" "$@"
