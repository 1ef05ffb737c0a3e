#!/usr/bin/env bash
# The venv of bench/coco (pycocotools, hotcoco, numpy; requirements.txt): prints its python.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec bash "$here/../../scripts/venv.sh" coco "$here/requirements.txt" 'import pycocotools, hotcoco, numpy'
