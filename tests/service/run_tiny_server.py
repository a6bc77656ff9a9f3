"""Serve the tiny test model with ``lstmtext.service.server.serve`` (the code path of ``lstmtext serve``).

Usage: python tests/service/run_tiny_server.py PORT [DELAY_S] [SHUTDOWN_DELAY_S] [MAX_QUEUE_TEXTS] [CONFIG_JSON]

CONFIG_JSON: more ``ServiceConfig`` fields, e.g. ``{"max_connections": 64}``.
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for svc_tiny

from svc_tiny import tiny_predictor

from lstmtext.service.config import ServiceConfig
from lstmtext.service.server import serve

if __name__ == "__main__":
    port = int(sys.argv[1])
    delay = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
    shutdown_delay = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
    max_queue = int(sys.argv[4]) if len(sys.argv) > 4 else 1024
    extra = json.loads(sys.argv[5]) if len(sys.argv) > 5 else {}
    cfg = ServiceConfig(shutdown_delay_s=shutdown_delay, max_queue_texts=max_queue, **extra)
    serve(tiny_predictor(delay_s=delay), host="127.0.0.1", port=port, config=cfg)
