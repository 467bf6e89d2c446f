"""Headless Chromium for the report tests: render a page, and list every request it made.

Chromium runs with a proxy pointed at a closed local port (so nothing a page asks for can
leave the machine) and writes Chrome's network log (`--log-net-log`): every URL request,
including those the proxy refused, is in it, with the site it was made for, so the page's
requests are told apart from the browser's own background traffic.
"""

import json
import os
import re
import shutil
import socket
import subprocess
from typing import List, Optional, Tuple

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# Schemes that never touch a network.
LOCAL_SCHEMES = ("file:", "data:", "about:", "chrome:", "chrome-extension:", "blob:",
                 "devtools:")


def find_chromium() -> Optional[str]:
  """The Chromium (or Chrome) executable, or None."""
  for name in CANDIDATES:
    path = shutil.which(name)
    if path:
      return path
  return None


def _closed_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]  # nothing listens once the socket is closed


def _flags(profile_dir: str, net_log: str) -> List[str]:
  return [
      "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
      f"--user-data-dir={profile_dir}", "--no-first-run", "--no-default-browser-check",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
      "--disable-default-apps", "--disable-extensions", "--disable-breakpad",
      "--disable-features=OptimizationHints,MediaRouter,Translate,AutofillServerCommunication",
      "--metrics-recording-only", "--safebrowsing-disable-auto-update",
      f"--proxy-server=http://127.0.0.1:{_closed_port()}", "--proxy-bypass-list=<-loopback>",
      f"--log-net-log={net_log}", "--net-log-capture-mode=Default",
      "--virtual-time-budget=5000",
  ]


def _events(net_log: str) -> Tuple[dict, List[dict]]:
  with open(net_log, encoding="utf-8", errors="replace") as f:
    text = f.read()
  try:
    log = json.loads(text)
  except json.JSONDecodeError:  # a browser that did not exit cleanly leaves it unclosed
    log = json.loads(text.rstrip().rstrip(",") + "]}")
  return log["constants"], log.get("events", [])


def network_requests(net_log: str) -> List[str]:
  """The URLs the *page* requested over the network, from a Chrome network log.

  A request is the page's when its network isolation key is the page's site (`file://`
  for a local file); the browser's own background requests (update checks, account
  probes) have a `null` or google.com key and are not the page's doing.
  """
  constants, events = _events(net_log)
  start_job = constants["logEventTypes"]["URL_REQUEST_START_JOB"]
  urls = set()
  for event in events:
    params = event.get("params") or {}
    if event.get("type") != start_job or "url" not in params:
      continue
    if params["url"].startswith(LOCAL_SCHEMES):
      continue
    if "file://" in params.get("network_isolation_key", ""):
      urls.add(params["url"])
  return sorted(urls)


def render(chromium: str, html_path: str, work_dir: str,
           screenshot: Optional[str] = None,
           window_size: Tuple[int, int] = (1100, 1400)) -> Tuple[str, List[str]]:
  """Loads `html_path` in headless Chromium.

  Args:
    chromium: the executable.
    html_path: the page (a local file).
    work_dir: scratch directory (profile, network log).
    screenshot: also save a PNG screenshot here.
    window_size: the viewport (the screenshot's size).

  Returns:
    (the DOM after rendering, every non-local URL the browser requested).
  """
  os.makedirs(work_dir, exist_ok=True)
  net_log = os.path.join(work_dir, "netlog.json")
  args = [chromium, *_flags(os.path.join(work_dir, "profile"), net_log)]
  if screenshot:
    args += [f"--screenshot={screenshot}", f"--window-size={window_size[0]},{window_size[1]}"]
  else:
    args += ["--dump-dom"]
  url = "file://" + os.path.abspath(html_path)
  proc = subprocess.run(args + [url], capture_output=True, text=True, timeout=180,
                        check=False)
  if proc.returncode != 0:
    raise RuntimeError(f"chromium exited {proc.returncode}: {proc.stderr[-2000:]}")
  return proc.stdout, network_requests(net_log)


def page_text(dom: str) -> str:
  """The DOM with tags removed and whitespace collapsed (what a reader sees, roughly)."""
  import html  # pylint: disable=g-import-not-at-top
  dom = re.sub(r"<(style|script|title)\b.*?</\1>", " ", dom, flags=re.S | re.I)
  return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", dom)).split())


def load_json(path: str) -> dict:
  with open(path) as f:
    return json.load(f)
