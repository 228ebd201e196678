"""Importing the app and serving /health never imports torch, transformers or peft."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from backend_client.manager import REPO_ROOT

HEAVY = ("torch", "transformers", "peft", "accelerate", "numpy", "safetensors", "tokenizers")


def test_health_without_ml_imports(tmp_path) -> None:
    script = textwrap.dedent(f"""
        import sys
        from fastapi.testclient import TestClient
        import backend.main, backend.app
        from backend.app import create_app
        from backend.settings import Settings
        app = create_app(Settings(data_dir={str(tmp_path)!r}, token="x" * 20))
        with TestClient(app, base_url="http://127.0.0.1") as client:
            assert client.get("/health").status_code == 200
            assert client.get("/api/jobs", headers={{"Authorization": "Bearer " + "x" * 20}}).status_code == 200
        print(",".join(sorted(m for m in {HEAVY!r} if m in sys.modules)))
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"imported at startup: {result.stdout.strip()}"
