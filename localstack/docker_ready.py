"""LocalStack ready.d hook for localstack/docker-compose.yml: the resources localstack/up
creates, from the same init.py and template.yaml (mounted under /opt/modelobs).
Untested here (no Docker on the build machine)."""

import sys

sys.path.insert(0, "/opt/modelobs/localstack")
sys.argv = [
    "init.py",
    "--template", "/opt/modelobs/template.yaml",
    "--env-out", "/var/lib/modelobs/resources.env",
    "--routes-out", "/var/lib/modelobs/routes.json",
]
import init  # noqa: E402

init.main()
