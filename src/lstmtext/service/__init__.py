"""The HTTP prediction service (FastAPI + uvicorn; install with ``pip install 'lstmtext[serve]'``).

>>> from lstmtext.service import create_app, ServiceConfig   # doctest: +SKIP
>>> app = create_app(predictor, ServiceConfig(max_texts=32))   # doctest: +SKIP
"""

try:
    import fastapi  # noqa: F401
    import prometheus_client  # noqa: F401
    import uvicorn  # noqa: F401
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError(
        f"the lstmtext service needs the optional 'serve' dependencies ({e.name} is missing); "
        "install them with: pip install 'lstmtext[serve]'"
    ) from e

from lstmtext.service.app import create_app
from lstmtext.service.batcher import MicroBatcher, Overloaded, RequestTimeout
from lstmtext.service.config import ServiceConfig
from lstmtext.service.reload import ReloadError, smoke_check

__all__ = ["MicroBatcher", "Overloaded", "ReloadError", "RequestTimeout", "ServiceConfig", "create_app", "smoke_check"]
