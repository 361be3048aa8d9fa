"""Render allure-results as a single-file HTML report with Allure 3 (npm package `allure`),
offline. `make install` (or `npm install` in the repository) provides it under node_modules/.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

CONFIG = """export default {
  name: "TR 23.701 conformance",
  plugins: { awesome: { options: { singleFile: true, reportLanguage: "en", groupBy: ["epic", "feature"] } } },
};
"""


class RenderError(Exception):
    pass


def allure_binary() -> str:
    local = REPO / "node_modules" / ".bin" / "allure"
    if local.exists():
        return str(local)
    found = shutil.which("allure")
    if not found:
        raise RenderError("Allure 3 is not installed: run `make install` (npm install in the repository)")
    return found


def render_html(alluredir: Path, output: Path, *, workdir: Path | None = None, timeout_s: float = 120) -> Path:
    if not alluredir.is_dir() or not any(alluredir.glob("*-result.json")):
        raise RenderError(f"no Allure results in {alluredir} (run `ims-conformance run` first)")
    output = output.resolve()
    config = (workdir or alluredir).resolve() / "allurerc.mjs"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(CONFIG)
    cmd = [allure_binary(), "generate", str(alluredir.resolve()), "--output", str(output), "--config", str(config)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        raise RenderError(f"allure generate did not finish in {timeout_s:.0f} s") from exc
    if proc.returncode != 0:
        raise RenderError(f"allure generate failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")
    index = output / "index.html"
    if not index.exists():
        raise RenderError(f"allure generate wrote no {index}")
    return index
