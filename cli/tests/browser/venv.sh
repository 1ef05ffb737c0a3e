#!/usr/bin/env bash
# The venv of the review page's browser test (websockets; requirements.txt): prints its python.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
exec bash "$here/../../../scripts/venv.sh" browser "$here/requirements.txt" 'import websockets.sync.client'
