"""The one compiled part: accounts._arena_cache (src/accounts/arena_cache.py says why).

Everything else about the package is in pyproject.toml. The extension is optional: a
machine without a C compiler or Python's headers installs and runs without it.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "accounts._arena_cache",
            sources=["src/accounts/_arena_cache.c"],
            optional=True,
        )
    ]
)
