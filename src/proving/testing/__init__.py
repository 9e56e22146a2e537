"""Helpers for users' tests: fake model backends and a fake remote model server.

Example:
    >>> import asyncio
    >>> from proving.testing import FakeModel
    >>> asyncio.run(FakeModel(output=0.7).predict({"x": 1}))
    0.7
"""

from proving.testing.fake_model import FakeModel
from proving.testing.model_server import ModelServerProcess, create_model_server

__all__ = ["FakeModel", "ModelServerProcess", "create_model_server"]
